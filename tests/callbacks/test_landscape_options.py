"""`LandscapeProbe` beyond its formulas (test_landscape.py): the settings it records, the preset's
cadence, a parameter the loss never uses, a parameter group with LR 0, and the reuse of the training
step's own gradient (the probe's cost: 1 forward + K forward/backward, README)."""
import re

import pytest
import torch
import yaml
from torch import nn

from callbacks.landscape import LandscapeProbe, update_direction
from tests.callbacks.probe_models import LinearSoftmax, classification_loader, fit
from tests.helpers import ROOT


def test_the_preset_measures_as_often_as_its_header_says():
    preset = (ROOT / "configs" / "presets" / "landscape.yaml").read_text()
    assert "init_args" not in yaml.safe_load(preset)["landscape"]  # the probe at its defaults
    assert LandscapeProbe().every_n_steps == int(re.search(r"every (\d+) steps", preset).group(1))


def test_the_settings_go_to_every_logger_with_the_hyperparameters():
    probe = LandscapeProbe(every_n_steps=3, step_sizes=[0.5, 1], relative_to_lr=True, direction="update",
                           exclude_norm_params=True)
    capture = fit(LinearSoftmax(batch_norm=True), [probe], classification_loader(), max_steps=1)
    assert {k: v for k, v in capture.hyperparams.items() if k.startswith("landscape/")} == {
        "landscape/every_n_steps": 3, "landscape/step_sizes": [0.5, 1.0], "landscape/relative_to_lr": True,
        "landscape/direction": "update", "landscape/exclude_norm_params": True}


class RecordsGradMode(LinearSoftmax):
    """LinearSoftmax that notes, for every forward, whether autograd was recording; optionally with a
    parameter its loss never uses (a branch a config switched off)."""

    def __init__(self, unused: bool = False):
        super().__init__()
        self.grad_modes: list[bool] = []
        self.unused = nn.Parameter(torch.ones(3)) if unused else None

    def forward(self, x):
        self.grad_modes.append(torch.is_grad_enabled())
        return super().forward(x)


def probe_rows(model, steps=3):
    torch.manual_seed(0)
    capture = fit(model, [LandscapeProbe(every_n_steps=2, step_sizes=[0.1, 0.4])], classification_loader(),
                  max_steps=steps)
    return capture.with_prefix("landscape/")


def test_one_process_in_full_precision_takes_g_from_the_training_steps_grad():
    """Per probe: the training forward, the forward at θ without autograd (g is the step's `.grad`),
    then one forward with autograd per step size."""
    model = RecordsGradMode()
    torch.manual_seed(0)
    assert sorted(probe_rows(model)) == [0, 2]
    assert model.grad_modes == [True, False, True, True] + [True] + [True, False, True, True]


def test_a_parameter_the_loss_never_uses_has_a_zero_gradient_not_an_error():
    torch.manual_seed(1)
    with_unused = RecordsGradMode(unused=True)
    torch.manual_seed(1)
    plain = RecordsGradMode()
    rows, reference = probe_rows(with_unused), probe_rows(plain)
    assert rows.keys() == reference.keys() == {0, 2}
    for step in rows:
        assert rows[step] == pytest.approx(reference[step], rel=1e-5)
    assert with_unused.grad_modes[:4] == [True, True, True, True]  # no `.grad` for it: g recomputed at θ


def test_a_parameter_group_with_lr_0_has_no_update_direction():
    """(θ − θ⁺)/LR with LR 0: the group does not move, so its direction is 0, not 0/0."""
    moving, frozen = nn.Parameter(torch.tensor([1.0, 2.0])), nn.Parameter(torch.tensor([3.0]))
    optimizer = torch.optim.SGD([{"params": [moving], "lr": 0.5}, {"params": [frozen], "lr": 0.0}])
    g = [torch.tensor([0.25, -1.0]), torch.tensor([4.0])]
    theta = [moving.detach().clone(), frozen.detach().clone()]
    direction = update_direction(optimizer, [moving, frozen], g, theta, {moving: 0.5, frozen: 0.0})
    assert torch.equal(direction[0], g[0]) and torch.equal(direction[1], torch.zeros(1))  # plain SGD: d = g
