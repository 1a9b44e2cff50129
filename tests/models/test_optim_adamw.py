"""`optimizer: adamw` is AdamW (Loshchilov & Hutter 2019, decoupled weight decay), not Adam with an L2
term in the gradient: a real fit's parameters after several steps equal torch's own `torch.optim.AdamW`
replayed on the same gradients, with each group's weight decay (γ, β undecayed), and differ from
`torch.optim.Adam`'s replay with the same decay as L2."""
import torch
from pytorch_lightning import Callback, Trainer
from torch.utils.data import DataLoader, TensorDataset

from models.classifier import ImageClassifier

LR, WEIGHT_DECAY, BETAS, STEPS = 0.05, 0.3, (0.8, 0.95), 6
NORM_PARAMS = {f"features.{i}.{name}" for i in (1, 5) for name in ("weight", "bias")}  # the small CNN's BN γ, β


class Gradients(Callback):
    """The parameters before training and every step's gradients and learning rate."""

    def __init__(self):
        self.start, self.grads, self.lrs = None, [], []

    def on_train_start(self, trainer, pl_module):
        self.start = {n: p.detach().clone() for n, p in pl_module.net.named_parameters()}

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.grads.append({n: p.grad.clone() for n, p in pl_module.net.named_parameters()})
        self.lrs.append([g["lr"] for g in optimizer.param_groups])


def replay(recorder: Gradients, optimizer_class) -> dict[str, torch.Tensor]:
    """torch's optimizer on a copy of the starting parameters, fed the recorded gradients."""
    params = {n: torch.nn.Parameter(t.clone()) for n, t in recorder.start.items()}
    groups = [{"params": [p for n, p in params.items() if n not in NORM_PARAMS], "weight_decay": WEIGHT_DECAY},
              {"params": [params[n] for n in sorted(NORM_PARAMS)], "weight_decay": 0.0}]
    optimizer = optimizer_class(groups, lr=LR, betas=BETAS)
    for grads, lrs in zip(recorder.grads, recorder.lrs):
        for group, lr in zip(optimizer.param_groups, lrs):
            group["lr"] = lr
        for n, p in params.items():
            p.grad = grads[n]
        optimizer.step()
    return {n: p.detach() for n, p in params.items()}


def test_adamw_is_torch_adamw_with_decoupled_decay_per_group():
    torch.manual_seed(0)
    model = ImageClassifier(num_classes=3, in_channels=1, image_size=8, norm="bn", norm_groups=4, optimizer="adamw",
                            lr=LR, betas=BETAS, weight_decay=WEIGHT_DECAY)
    data = TensorDataset(torch.randn(4 * STEPS, 1, 8, 8), torch.tensor([0, 1, 2, 0] * STEPS))
    recorder = Gradients()
    Trainer(accelerator="cpu", max_steps=STEPS, callbacks=[recorder], logger=False, enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False,
            num_sanity_val_steps=0).fit(model, DataLoader(data, batch_size=4))
    assert len(recorder.grads) == STEPS
    trained = {n: p.detach() for n, p in model.net.named_parameters()}
    adamw, adam_l2 = replay(recorder, torch.optim.AdamW), replay(recorder, torch.optim.Adam)
    for name, value in trained.items():
        torch.testing.assert_close(value, adamw[name], rtol=1e-6, atol=1e-7, msg=name)
    # the reference tells the two apart: Adam's L2 decay moves the decayed weights elsewhere
    decayed = [n for n in trained if n not in NORM_PARAMS]
    assert max(float((adam_l2[n] - trained[n]).abs().max()) for n in decayed) > 1e-4
