"""Each speed switch gives the same numbers as without it (CPU), or differs for a documented reason."""
import copy

import pytest
import torch
import torch.nn.functional as F

from models.classifier import ImageClassifier
from models.norms import make_norm, norm_names


def classifier(**options):
    torch.manual_seed(0)
    return ImageClassifier(backbone="small_cnn", norm="bn", norm_groups=4, num_classes=10, in_channels=3,
                           image_size=16, optimizer="adam", lr=1e-2, **options)


def batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(8, 3, 16, 16, generator=g), torch.randint(0, 10, (8,), generator=g)


def loss_and_grads(model):
    x, y = batch()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


def test_channels_last_gives_the_same_loss_and_gradients():
    plain, nhwc = classifier(), classifier(channels_last=True)
    conv = nhwc.net.features[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    (loss_a, grads_a), (loss_b, grads_b) = loss_and_grads(plain), loss_and_grads(nhwc)
    torch.testing.assert_close(loss_a, loss_b, rtol=1e-5, atol=1e-6)
    for name in grads_a:
        torch.testing.assert_close(grads_a[name], grads_b[name], rtol=1e-4, atol=1e-6)
    assert nhwc.state_dict().keys() == plain.state_dict().keys()


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_fused_optimizer_takes_the_same_steps(optimizer):
    # norm "none": a conv bias in front of BN has an exactly-zero true gradient, where Adam's
    # g/(√v+ε) turns rounding noise of ~1e-9 into full-size steps that differ between kernels.
    models = {}
    for fused in (False, True):
        torch.manual_seed(0)
        model = ImageClassifier(backbone="small_cnn", norm="none", norm_groups=4, num_classes=10, in_channels=3,
                                image_size=16, optimizer=optimizer, lr=1e-2, weight_decay=1e-4,
                                fused_optimizer=fused)
        from models.optim import build_optimizer, parameter_groups

        opt = build_optimizer(optimizer, parameter_groups(model.net, 1e-4, False, 1.0, 1e-2), 1e-2, 0.9,
                              (0.9, 0.999), fused=fused)
        assert all(g.get("fused") == (fused or None) for g in opt.param_groups)
        for seed in range(3):
            x, y = batch(seed)
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        models[fused] = model
    # Same arithmetic, different summation order: parameters agree to 0.1 % of one step (lr 1e-2).
    for a, b in zip(models[False].parameters(), models[True].parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", norm_names())
def test_norm_statistics_stay_float32_under_bf16_autocast(name):
    # Activations with a large mean: statistics computed in bf16 (8-bit mantissa) would be wrong by
    # O(1) after normalization; computed in float32 only the bf16 rounding of the output remains.
    torch.manual_seed(0)
    layer = make_norm(name, 8, groups=4)
    x = (torch.randn(16, 8, 6, 6) * 0.5 + 100).bfloat16()
    reference = copy.deepcopy(layer)(x.float())
    with torch.autocast("cpu", torch.bfloat16):
        out = layer(x)
    assert (out.float() - reference).abs().max() < 0.05


def test_bf16_mixed_training_step_matches_float32_to_bf16_tolerance():
    from pytorch_lightning import Trainer

    losses = {}
    for precision in ("32-true", "bf16-mixed"):
        model = classifier()
        trainer = Trainer(precision=precision, accelerator="cpu", devices=1, max_steps=1, logger=False,
                          enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
        x, y = batch()
        loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
        captured = []
        model.training_step = lambda b, i, m=model: captured.append(F.cross_entropy(m(b[0]), b[1])) or captured[-1]
        trainer.fit(model, train_dataloaders=loader)
        losses[precision] = captured[0].float().item()
    assert abs(losses["bf16-mixed"] - losses["32-true"]) < 2e-2 * abs(losses["32-true"])
    assert losses["bf16-mixed"] != losses["32-true"]  # autocast really ran in bf16


@pytest.mark.slow
def test_compiled_forward_equals_eager():
    eager, compiled = classifier(), classifier(compile=True)
    x, _ = batch()
    torch.testing.assert_close(compiled(x), eager(x), rtol=1e-4, atol=1e-5)
    assert compiled.state_dict().keys() == eager.state_dict().keys()
