"""λ's parameter group (no decay, own LR) and `lambda_max_step`, the per-step clamp on λ's change."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from models.classifier import ImageClassifier
from models.norms import GNPlus, make_norm
from models.optim import build_optimizer, limit_lambda_step, parameter_groups


def _net():
    return nn.Sequential(nn.Conv2d(3, 8, 3), make_norm("gn_plus_gn_first", 8, groups=4), nn.ReLU(),
                         nn.Conv2d(8, 8, 3), make_norm("gn_plus_parallel", 8, groups=4, noise_std=0.1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))


def test_lambda_group_has_no_decay_and_scaled_lr():
    net = _net()
    groups = {g["name"]: g for g in parameter_groups(net, 1e-4, False, 3.0, 0.1)}
    lambdas = [m.lambda_ for m in net.modules() if isinstance(m, GNPlus)]
    assert len(lambdas) == 2 and all(any(p is q for q in groups["lambda"]["params"]) for p in lambdas)
    assert groups["lambda"]["weight_decay"] == 0 and groups["lambda"]["lr"] == pytest.approx(0.3)
    assert groups["norm"]["weight_decay"] == 0 and len(groups["norm"]["params"]) == 4  # γ, β of both layers


def _step(net, max_step, lr=50.0):
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(parameter_groups(net, 0.0, False, 1.0, lr), lr=lr)
    loss = F.cross_entropy(net(torch.randn(8, 3, 6, 6)), torch.tensor([0, 1] * 4))
    loss.backward()
    before = [m.lambda_.item() for m in net.modules() if isinstance(m, GNPlus)]
    with limit_lambda_step(net, max_step):
        optimizer.step()
    return before, [m.lambda_.item() for m in net.modules() if isinstance(m, GNPlus)]


def test_lambda_max_step_clamps_the_change_and_none_leaves_it():
    free_net, clamped_net = _net(), _net()
    clamped_net.load_state_dict(free_net.state_dict())
    before, free = _step(free_net, None)
    _, clamped = _step(clamped_net, 0.01)
    assert max(abs(a - b) for a, b in zip(free, before)) > 0.01  # the limit is binding in this step
    for b, f, c in zip(before, free, clamped):
        assert c == pytest.approx(b + max(-0.01, min(0.01, f - b)), abs=1e-6)


def test_classifier_applies_lambda_max_step_in_its_optimizer_step():
    model = ImageClassifier(backbone="small_cnn", norm="gn_plus_gn_first", norm_groups=4, lr=100.0,
                            lambda_max_step=0.02, num_classes=3, in_channels=1, image_size=8)
    optimizer = build_optimizer("sgd", parameter_groups(model.net, 0.0, False, 1.0, 100.0), 100.0, 0.0, (0.9, 0.999))
    x, y = torch.randn(6, 1, 8, 8), torch.tensor([0, 1, 2] * 2)

    def closure():
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss

    before = [m.lambda_.item() for m in model.modules() if isinstance(m, GNPlus)]
    model.optimizer_step(0, 0, optimizer, closure)
    after = [m.lambda_.item() for m in model.modules() if isinstance(m, GNPlus)]
    assert all(abs(a - b) <= 0.02 + 1e-6 for a, b in zip(after, before)) and after != before


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf")])
def test_bad_lambda_max_step_is_one_line(bad):
    with pytest.raises(ValueError, match=r"lambda_max_step must be a finite number > 0 or null"):
        ImageClassifier(lambda_max_step=bad)
