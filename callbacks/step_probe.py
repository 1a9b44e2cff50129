"""`StepProbe`: what every analysis callback that measures the loss surface at a training step shares.

Santurkar et al. 2018 ("How Does Batch Normalization Help Optimization?", Fig. 4) and the GN paper
(Gunawan, Yin & Zhang 2022, §3) measure the landscape at θ_t on the step's own batch, without
changing the training.
A probe here (`LandscapeProbe`, `HessianTopEigen`):

- runs every `every_n_steps` optimizer steps, in `on_before_optimizer_step`: Lightning 2.6 calls
  it after backward (after the AMP unscale) and before gradient clipping and the optimizer step,
  so the parameters are θ_t and `.grad` is the raw gradient. The batch is the one
  `on_train_batch_start` saw, i.e. after the data module's `on_after_batch_transfer`
  (normalized and augmented exactly as `training_step` got it); with gradient accumulation, the
  window's last batch (a probe that needs g then computes that batch's own, see `LandscapeProbe`);
- evaluates `pl_module.compute_loss(batch)` in training mode with autocast off (bf16 would round
  small steps away) and grad enabled (the hook runs inside `optimizer.step`, which disables it);
  every forward starts from the RNG state the training step's forward started from, so dropout
  draws the training step's mask in every probe pass (and `.grad` belongs to the same function);
- takes gradients with `torch.autograd.grad` on the unwrapped LightningModule: `.grad` is never
  written and DDP's reducer (which hooks gradient accumulation of the wrapped model) never runs,
  so there is no all-reduce; each rank probes its own batch and the logged values are the mean
  over ranks (every rank probes at the same steps, so SyncBatchNorm forwards stay paired);
- restores what it may touch: parameters, buffers (BN running statistics and
  `num_batches_tracked`, GNPlus BN parts included: every buffer of the module), `.grad`
  bindings, and the torch CPU/CUDA, numpy and Python RNG states (`TrainingSnapshot`); the
  optimizer state where a probe steps the optimizer (`OptimizerSnapshot`);
- logs to every logger at the global step (the step Lightning logs this batch's `train/loss`
  at), regardless of `log_every_n_steps`, so the values land in `metrics.csv`.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Any, Iterator

import torch
from pytorch_lightning import Callback, LightningModule, Trainer

from callbacks.rng_state import rng_states, set_rng_states
from value_ranges import integer


class TrainingSnapshot:
    """Copies of the module's parameters and buffers, its `.grad` bindings and the RNG states."""

    def __init__(self, module: torch.nn.Module):
        self.parameters = {p: p.detach().clone() for p in module.parameters()}
        self.grads = {p: p.grad for p in module.parameters()}
        self.buffers = [(b, b.detach().clone()) for b in module.buffers()]
        self.rng = rng_states()

    @torch.no_grad()
    def restore(self) -> None:
        for p, saved in self.parameters.items():
            p.copy_(saved)
            p.grad = self.grads[p]
        for b, saved in self.buffers:
            b.copy_(saved)
        set_rng_states(self.rng)


class OptimizerSnapshot:
    """The optimizer's per-parameter state and hyper-parameters, restored in place."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.state = {p: {k: v.clone() if torch.is_tensor(v) else copy.deepcopy(v) for k, v in s.items()}
                      for p, s in optimizer.state.items()}
        self.groups = [{k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
                       for g in optimizer.param_groups]

    @torch.no_grad()
    def restore(self) -> None:
        for p in list(self.optimizer.state):
            if p not in self.state:
                del self.optimizer.state[p]  # created by the probe's step (e.g. a first momentum buffer)
        for p, saved in self.state.items():
            current = self.optimizer.state[p]
            for k in [k for k in current if k not in saved]:
                del current[k]
            for k, v in saved.items():
                if torch.is_tensor(v) and torch.is_tensor(current.get(k)) and current[k].shape == v.shape:
                    current[k].copy_(v)  # in place: whoever holds the tensor keeps seeing the state
                else:
                    current[k] = v
        for group, saved in zip(self.optimizer.param_groups, self.groups):
            group.update(saved)


@contextmanager
def probe_mode(module: torch.nn.Module) -> Iterator[None]:
    """Grad on, autocast off for the module's device type, training mode as it is."""
    device_type = next(module.parameters()).device.type
    with torch.enable_grad(), torch.autocast(device_type=device_type, enabled=False):
        yield


def probe_loss(pl_module: LightningModule, batch, rng: dict[str, Any]) -> torch.Tensor:
    """The training loss of `batch`, every call from the RNG state `rng` (one dropout mask)."""
    set_rng_states(rng)
    return pl_module.compute_loss(batch)[0]


def flat_norm(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t) for t in tensors]))


class StepProbe(Callback):
    """Base class: subclasses set `prefix` and implement `measure`."""

    prefix: str

    def __init__(self, every_n_steps: int):
        integer(1).check(f"{self.prefix}.every_n_steps", every_n_steps)
        self.every_n_steps = every_n_steps
        self._batch, self._batch_rng = None, None
        self._last_step: int | None = None

    def measure(self, trainer: Trainer, pl_module: LightningModule, batch, optimizer: torch.optim.Optimizer,
                snapshot: TrainingSnapshot, batch_rng: dict[str, Any]) -> dict[str, float]:
        """The values to log (keys without the prefix), computed at θ = the snapshot's parameters;
        every forward goes through `probe_loss(pl_module, batch, batch_rng)`."""
        raise NotImplementedError

    def settings(self) -> dict[str, Any]:
        """The options to record with the run's hyper-parameters."""
        return {"every_n_steps": self.every_n_steps}

    def _due(self, trainer: Trainer) -> bool:
        step = trainer.global_step
        return step % self.every_n_steps == 0 and step != self._last_step

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams({f"{self.prefix}/{k}": v for k, v in self.settings().items()})

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch,
                             batch_idx: int) -> None:
        due = self._due(trainer)
        self._batch, self._batch_rng = (batch, rng_states()) if due else (None, None)

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule,
                                 optimizer: torch.optim.Optimizer) -> None:
        if self._batch is None or not self._due(trainer):
            return
        step, batch, batch_rng = trainer.global_step, self._batch, self._batch_rng
        self._batch, self._batch_rng = None, None
        self._last_step = step
        snapshot = TrainingSnapshot(pl_module)
        try:
            with probe_mode(pl_module):
                values = self.measure(trainer, pl_module, batch, optimizer, snapshot, batch_rng)
        finally:
            snapshot.restore()
        keys = list(values)
        local = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=pl_module.device)
        mean = trainer.strategy.reduce(local, reduce_op="mean").tolist()
        metrics = {f"{self.prefix}/{k}": v for k, v in zip(keys, mean)}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)
