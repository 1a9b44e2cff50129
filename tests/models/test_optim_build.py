"""`models.optim.build_optimizer` and `parameter_groups` against torch's own optimizers, built by hand.

Each optimizer name must give torch's optimizer of that name with the run's learning rate, momentum
(SGD) and betas (Adam, AdamW): a few steps on fixed gradients must land where torch's optimizer
constructed directly with those values lands, for values unlike torch's defaults so that a value
dropped on the way is seen. `fused` is torch's single-kernel step: asked for, it is on; not asked
for, torch decides (None).
"""
import pytest
import torch
from torch import nn

from models.optim import build_optimizer, parameter_groups

LR, MOMENTUM, BETAS, WEIGHT_DECAY, STEPS = 0.07, 0.6, (0.7, 0.9), 0.2, 4
# name -> torch's optimizer and the values, besides the learning rate, it must be given
REFERENCE = {"sgd": (torch.optim.SGD, {"momentum": MOMENTUM}), "adam": (torch.optim.Adam, {"betas": BETAS}),
             "adamw": (torch.optim.AdamW, {"betas": BETAS})}


def stepped(make_optimizer) -> list[torch.Tensor]:
    """Two parameters (one decayed group, one not) after STEPS steps on fixed, different gradients."""
    torch.manual_seed(0)
    params = [nn.Parameter(torch.randn(5)), nn.Parameter(torch.randn(3))]
    gradients = [[torch.randn_like(p) for p in params] for _ in range(STEPS)]
    optimizer = make_optimizer([{"params": [params[0]], "weight_decay": WEIGHT_DECAY},
                                {"params": [params[1]], "weight_decay": 0.0}])
    for step in gradients:
        for p, g in zip(params, step):
            p.grad = g
        optimizer.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("name", list(REFERENCE))
def test_each_name_is_torchs_optimizer_with_the_runs_values(name):
    ours = stepped(lambda groups: build_optimizer(name, groups, LR, MOMENTUM, BETAS))
    optimizer_class, values = REFERENCE[name]
    reference = stepped(lambda groups: optimizer_class(groups, lr=LR, **values))
    for value, expected in zip(ours, reference):
        torch.testing.assert_close(value, expected, rtol=0, atol=0)
    # the reference is sharp enough: torch's defaults (lr 1e-3, no momentum, betas 0.9, 0.999) land elsewhere
    default = stepped(lambda groups: optimizer_class(groups, lr=LR))
    assert not torch.equal(default[0], reference[0])


@pytest.mark.parametrize("name", list(REFERENCE))
def test_fused_is_on_only_when_asked(name):
    params = [{"params": [nn.Parameter(torch.zeros(2))]}]
    assert build_optimizer(name, params, LR, MOMENTUM, BETAS, fused=True).defaults["fused"] is True
    assert build_optimizer(name, params, LR, MOMENTUM, BETAS, fused=False).defaults["fused"] is None
    assert build_optimizer(name, params, LR, MOMENTUM, BETAS).defaults["fused"] is None


def test_unknown_optimizer_is_refused_with_the_allowed_names():
    with pytest.raises(ValueError, match=r"^unknown optimizer 'lamb'; allowed: sgd, adam, adamw$"):
        build_optimizer("lamb", [{"params": [nn.Parameter(torch.zeros(1))]}], LR, MOMENTUM, BETAS)


def test_a_frozen_parameter_leaves_the_rest_of_its_layer_in_the_groups():
    """A layer whose weight is frozen still trains its bias (and the norm layer after it its γ, β)."""
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    net[0].weight.requires_grad_(False)
    groups = {g["name"]: g["params"] for g in parameter_groups(net, WEIGHT_DECAY, False, 1.0, LR)}
    assert groups == {"decay": [net[0].bias], "norm": [net[1].weight, net[1].bias]}
