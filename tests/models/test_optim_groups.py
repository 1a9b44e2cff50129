"""The classifier's optimizer groups in a real fit: `norm_weight_decay` and `lambda_lr_scale`.

Which parameter belongs where is written out by name here (not asked of `models.optim`): the small
CNN's norm layers are `features.1` and `features.5`; their γ, β are decayed only with
`norm_weight_decay: true`, GNPlus's λ never, and λ's LR is `lr × lambda_lr_scale` at every step of
the schedule. The first SGD step is checked against p − lr·(∇p + wd·p) by hand.
"""
import pytest
import torch
from pytorch_lightning import Callback, Trainer
from torch.utils.data import DataLoader, TensorDataset

from models.classifier import ImageClassifier

LR, WEIGHT_DECAY, LAMBDA_LR_SCALE, WARMUP_EPOCHS, BATCHES = 0.2, 0.05, 3.0, 1, 4
NORM_PARAMS = {f"features.{i}.{name}" for i in (1, 5) for name in ("weight", "bias")}
LAMBDA_PARAMS = {"features.1.lambda_", "features.5.lambda_"}


class FirstStep(Callback):
    """Every group's LR at every step; parameters and gradients around the first optimizer step."""

    def __init__(self):
        self.lrs, self.before, self.grads, self.after = [], None, None, None

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.lrs.append({g["name"]: g["lr"] for g in optimizer.param_groups})
        if trainer.global_step == 0:
            self.groups = [dict(g) for g in optimizer.param_groups]
            self.before = {n: p.detach().clone() for n, p in pl_module.net.named_parameters()}
            self.grads = {n: p.grad.clone() for n, p in pl_module.net.named_parameters()}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == 1 and self.after is None:
            self.after = {n: p.detach().clone() for n, p in pl_module.net.named_parameters()}


def fit(norm: str, norm_weight_decay: bool) -> tuple[ImageClassifier, FirstStep]:
    torch.manual_seed(0)
    model = ImageClassifier(num_classes=3, in_channels=1, image_size=8, norm=norm, norm_groups=4, optimizer="sgd",
                            lr=LR, momentum=0.9, weight_decay=WEIGHT_DECAY, norm_weight_decay=norm_weight_decay,
                            lambda_lr_scale=LAMBDA_LR_SCALE, schedule="cosine", warmup_epochs=WARMUP_EPOCHS)
    data = TensorDataset(torch.randn(4 * BATCHES, 1, 8, 8), torch.tensor([0, 1, 2, 0] * BATCHES))
    recorder = FirstStep()
    Trainer(accelerator="cpu", max_epochs=2, callbacks=[recorder], logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0).fit(model, DataLoader(data, batch_size=4))
    return model, recorder


@pytest.mark.parametrize("norm,norm_weight_decay", [
    ("gn_plus_gn_first", False), ("gn_plus_gn_first", True), ("bn", True)])
def test_groups_and_first_step_by_hand(norm, norm_weight_decay):
    model, recorder = fit(norm, norm_weight_decay)
    names = {id(p): n for n, p in model.net.named_parameters()}
    lambdas = LAMBDA_PARAMS if norm.startswith("gn_plus") else set()
    expected = {"decay": set(names.values()) - NORM_PARAMS - lambdas, "norm": NORM_PARAMS, "lambda": lambdas}
    groups = {g["name"]: g for g in recorder.groups}
    assert {name: {names[id(p)] for p in g["params"]} for name, g in groups.items()} == {
        name: members for name, members in expected.items() if members}
    assert groups["decay"]["weight_decay"] == WEIGHT_DECAY
    assert groups["norm"]["weight_decay"] == (WEIGHT_DECAY if norm_weight_decay else 0.0)

    first_lr = LR / (WARMUP_EPOCHS * BATCHES)  # warm-up's first step × cosine(0) = 1
    for group_name, members in expected.items():
        lr = first_lr * (LAMBDA_LR_SCALE if group_name == "lambda" else 1.0)
        decay = WEIGHT_DECAY if group_name == "decay" or (group_name == "norm" and norm_weight_decay) else 0.0
        for n in members:
            p0, grad = recorder.before[n].double(), recorder.grads[n].double()
            hand = p0 - lr * (grad + decay * p0)  # SGD's first step: the momentum buffer is the gradient
            assert torch.allclose(recorder.after[n].double(), hand, rtol=1e-6, atol=1e-7), n
            assert not torch.equal(recorder.after[n], recorder.before[n]), n

    assert len(recorder.lrs) == 2 * BATCHES
    assert len({round(step["decay"], 12) for step in recorder.lrs}) == 2 * BATCHES  # the schedule moves
    for step in recorder.lrs:  # every group follows the schedule; λ's at lambda_lr_scale times the rest
        assert step["norm"] == step["decay"]
        if lambdas:
            assert step["lambda"] == pytest.approx(LAMBDA_LR_SCALE * step["decay"], rel=1e-12)
