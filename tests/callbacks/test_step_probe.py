"""`StepProbe`'s own promises, at the level of its hooks and snapshots (the probes' numbers are tested
in test_landscape*.py and test_hessian.py):

- one measurement per global step, and only of a batch the probe saw start;
- `OptimizerSnapshot` puts back every kind of state an optimizer may hold (tensors in place, numbers,
  lists) and its hyper-parameters, and drops state the probe's own step created.
"""
from types import SimpleNamespace

import torch
from pytorch_lightning.strategies import SingleDeviceStrategy

from callbacks.step_probe import OptimizerSnapshot, StepProbe
from tests.callbacks.probe_models import LinearSoftmax


class CountingProbe(StepProbe):
    prefix = "count"

    def __init__(self, every_n_steps: int):
        super().__init__(every_n_steps)
        self.measured: list[int] = []

    def measure(self, trainer, pl_module, batch, optimizer, snapshot, batch_rng):
        self.measured.append(trainer.global_step)
        return {"batch": float(batch)}


def test_a_probe_measures_once_per_global_step_and_only_a_batch_it_saw_start():
    logged = []
    trainer = SimpleNamespace(global_step=0, strategy=SingleDeviceStrategy(torch.device("cpu")),
                              loggers=[SimpleNamespace(log_metrics=lambda m, step: logged.append((step, m)))])
    module, probe = LinearSoftmax(), CountingProbe(every_n_steps=1)

    probe.on_before_optimizer_step(trainer, module, None)  # no batch seen at this step: nothing to measure
    assert probe.measured == []
    for batch_idx in range(2):  # the step did not advance (an optimizer step skipped): measured once
        probe.on_train_batch_start(trainer, module, 10 + batch_idx, batch_idx)
        probe.on_before_optimizer_step(trainer, module, None)
    trainer.global_step = 1
    probe.on_train_batch_start(trainer, module, 12, 2)
    probe.on_before_optimizer_step(trainer, module, None)
    assert probe.measured == [0, 1]
    assert logged == [(0, {"count/batch": 10.0}), (1, {"count/batch": 12.0})]


def test_optimizer_snapshot_restores_every_kind_of_state_and_the_hyper_parameters():
    p, q = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p, q], lr=0.1, momentum=0.9)
    buffer = torch.ones(2)
    # L-BFGS-like state: a number and a list of tensors; a hyper-parameter holding a nested list
    optimizer.state[p] = {"momentum_buffer": buffer, "steps": 3, "history": [torch.ones(1)]}
    optimizer.param_groups[0]["schedule"] = {"milestones": [1, 2]}
    snapshot = OptimizerSnapshot(optimizer)

    buffer.add_(1.0)
    optimizer.state[p]["steps"] = 4
    optimizer.state[p]["history"][0].add_(1.0)
    optimizer.state[p]["extra"] = torch.zeros(1)
    optimizer.state[q] = {"momentum_buffer": torch.ones(1)}  # created by the probe's step
    optimizer.param_groups[0]["lr"] = 5.0
    optimizer.param_groups[0]["schedule"]["milestones"].append(3)
    snapshot.restore()

    state = optimizer.state[p]
    assert state.keys() == {"momentum_buffer", "steps", "history"} and q not in optimizer.state
    assert state["momentum_buffer"] is buffer and torch.equal(buffer, torch.ones(2))  # in place
    assert state["steps"] == 3 and torch.equal(state["history"][0], torch.ones(1))
    assert optimizer.param_groups[0]["lr"] == 0.1 and optimizer.param_groups[0]["schedule"] == {"milestones": [1, 2]}
