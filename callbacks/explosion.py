"""`ExplosionDetector`: catches a gradient explosion at the step it happens, records it, loses nothing.

Gunawan, Yin and Zhang ("Understanding and Improving Group Normalization", §5.1–5.2, Tables 2 and 4)
lost runs to gradient explosion (GNPlusBNFirst and GNPlusParallel on CIFAR-10, GNPlusGNFirst on SVHN
at small batch) and left them out of their tables. Here an explosion is a recorded outcome, and the
CLI adds this detector to every run with its defaults unless the config gives one.

Every optimizer step, once the gradient is complete and before the optimizer applies it
(`on_before_optimizer_step`), the detector computes the global gradient norm `grad/norm` (one fused
`compat.foreach_norm`; sent to the loggers on the steps Lightning writes, every `log_every_n_steps`)
and checks, in this order of precedence:
- `nan_loss`: the training loss is not finite;
- `inf_grad`: `grad/norm` is not finite;
- `spike`: `grad/norm` > `spike_factor` × the running reference, the (lower) `spike_quantile` quantile
  of the last `window` finite norms (default 10 × the 0.9 quantile of 100), for `spike_patience` steps in a row, once `warmup_steps` steps have been observed in this fit;
- `vanish`: `grad/norm` < `vanish_threshold` for `vanish_patience` steps in a row;
- at the end of training (`on_train_end`): `nonfinite_weights` when a weight or buffer is not finite (an
  update that overflowed), else `nan_loss` when the last loss was not (a warned NaN): the run ends
  `exploded`, never `completed`.

`action` applies to the non-finite triggers (default `stop`), `spike_action` to `spike` and `vanish`
(default `warn`): a spike of the gradient norm is common in healthy small-batch training, a NaN
never is (bench/explosion_rule.py measures both; bench/RESULTS.md). Actions:
- `stop`: the update of the bad step is not applied, the BN running statistics its forward
  pass changed are restored, `checkpoints/last.ckpt` is saved (the state after the previous step, so
  the weights on disk are never NaN), ModelCheckpoint's own `save_last` is switched off so it cannot
  overwrite that file, training stops and `summary.json` says `exploded`.
- `skip_step`: that update is not applied (parameters, buffers and optimizer state untouched) and
  counted; once `max_skips` updates were skipped, the next event stops the run as `stop` does.
- `warn`: log and print only; training goes on.
An update is "not applied" by setting every gradient to None: torch's optimizers skip a parameter
whose `.grad` is None altogether (no momentum, Adam moments, step count or weight decay change), as
documented for `Optimizer.zero_grad(set_to_none=True)`. Zeroing the gradient would not be enough.
The step still counts in `trainer.global_step` and the LR schedule, like a step of AMP's GradScaler.

Cheap per step: on the device, one fused norm of every gradient, their total and one stack of
(loss, norm); nothing else. The host reads the (loss, norm) pairs of the unread steps every
`sync_every` steps (one `.tolist()`) and applies the rule to each in order (`StepRule`): the running
reference is an order statistic of a sorted window kept on the host (an insertion and a removal per
step, no quantile computation), in float32 arithmetic as the device would compute it, so every step
is checked and an event names its exact step. `sync_every` defaults to 1 on the CPU (a read costs
nothing there, and every action happens before the bad update) and to `DEVICE_SYNC_EVERY` on an
accelerator, where a read per step would stall it (1 there too when an action is `skip_step`). With
N > 1 a run stays asynchronous, at the cost of acting up to N−1 steps late: the report still names
the exact step, value and reference, but the updates in between were applied, so `stop` saves a
checkpoint (the state after the previous step, BN statistics included) only if the weights are still
finite (otherwise it keeps the last periodic one: the weights on disk are still never NaN) and
`skip_step` is refused (it can only skip a step read before its update).

On every event: `explosion/step` and `explosion/kind` (1 + index in `TRIGGERS`) go to every logger
and one line to stderr; the first event (replaced by the one that stopped the run, which keeps the
first as `first_event`) is written to `explosion.json` in the run directory (step,
epoch, batch index, trigger, value, running reference, the 10 parameters with the largest gradient
norms, every GNPlus layer's σ(λ), the learning rates, the checkpoint saved) and recorded in
`summary.json` through `RunSummary`. With `grad_norm_every_n_steps`, every module's gradient norm is
logged as `grad_norm/<module path>` every n steps (one sync each time). Under DDP the gradient is
all-reduced before the hook, so every rank sees the same norm and takes the same action.
"""
from __future__ import annotations

import bisect
import math
import struct
import sys
from collections import deque
from pathlib import Path
from typing import Any

import torch
from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint

from callbacks.compat import foreach_copy, foreach_norm
from callbacks.run_files import write_json
from callbacks.run_summary import RunSummary
from models.logging_steps import is_logging_step
from models.norms import GNPlus
from value_ranges import check_values, finite_number, integer, number_in, one_of

TRIGGERS = ("nan_loss", "inf_grad", "spike", "vanish", "nonfinite_weights")
NON_FINITE = ("nan_loss", "inf_grad", "nonfinite_weights")  # handled by `action`; the others by `spike_action`
ACTIONS = ("stop", "skip_step", "warn")
EXPLOSION_FILE = "explosion.json"
TOP_PARAMETERS = 10
# What summary.json's `explosion` holds (explosion.json has everything).
SUMMARY_FIELDS = ("step", "epoch", "trigger", "value", "action", "events", "skipped", "stopped")
DEVICE_SYNC_EVERY = 16  # the default `sync_every` off the CPU: one host read per 16 steps
# The constructor's options and their ranges, checked in this order.
OPTIONS = {
    "action": one_of(*ACTIONS),
    "spike_action": one_of(*ACTIONS),
    "spike_factor": finite_number(above=1),
    "spike_quantile": number_in("(0, 1]"),
    "window": integer(1),
    "warmup_steps": integer(0),
    "spike_patience": integer(1),
    "vanish_threshold": finite_number(at_least=0).or_none(),
    "vanish_patience": integer(1),
    "sync_every": integer(1).or_none(),
    "max_skips": integer(0),
    "grad_norm_every_n_steps": integer(1).or_none(),
}


class ExplosionDetector(Callback):
    def __init__(self, action: str = "stop", spike_action: str = "warn", spike_factor: float = 10.0,
                 spike_quantile: float = 0.9, window: int = 100, warmup_steps: int = 1, spike_patience: int = 1,
                 vanish_threshold: float | None = 1e-8, vanish_patience: int = 100,
                 sync_every: int | None = None, max_skips: int = 10, grad_norm_every_n_steps: int | None = None):
        """
        Args:
            action: what a non-finite loss, gradient or final weight does: stop | skip_step | warn
                (see the module docstring).
            spike_action: what a `spike` or `vanish` event does: warn (default) | stop | skip_step.
            spike_factor: a spike is `grad/norm` above this multiple of the running reference (> 1).
            spike_quantile: the running reference is this (lower) quantile of the last `window` finite
                norms, in (0, 1]. Default 0.9, not the median (0.5): at batch 2 the norm's tail is heavy late
                in training, where 10 × the median raises false alarms in healthy runs and 10 × the 0.9
                quantile does not (bench/RESULTS.md, "explosion_rule").
            window: steps in the running reference.
            warmup_steps: steps observed before spikes are checked. Default 1: a healthy run's first
                norms move little step to step, while a far too large learning rate explodes the norm at
                step 1, which a longer warm-up would let through (the reference then holds exploded values).
            spike_patience: consecutive steps above `spike_factor` × the reference that make one `spike` event.
            vanish_threshold: `grad/norm` below this counts towards `vanish`; None turns the check off.
            vanish_patience: consecutive steps below `vanish_threshold` that make a `vanish` event.
            sync_every: read the device-side values every this many steps (1: act before the bad update).
                None (default): 1 on the CPU, `DEVICE_SYNC_EVERY` on an accelerator (1 with `skip_step`).
            max_skips: with skip_step, updates skipped before the next event stops the run.
            grad_norm_every_n_steps: also log every module's gradient norm every n steps (None: never).
        """
        check_values("explosion.", OPTIONS, {
            "action": action, "spike_action": spike_action, "spike_factor": spike_factor,
            "spike_quantile": spike_quantile, "window": window, "warmup_steps": warmup_steps,
            "spike_patience": spike_patience, "vanish_threshold": vanish_threshold,
            "vanish_patience": vanish_patience, "sync_every": sync_every, "max_skips": max_skips,
            "grad_norm_every_n_steps": grad_norm_every_n_steps})
        for name, value in (("action", action), ("spike_action", spike_action)):
            if value == "skip_step" and sync_every not in (None, 1):
                raise ValueError(f"explosion.{name}=skip_step needs sync_every=1 (a step can only be skipped if "
                                 f"its flags are read before its update), got sync_every={sync_every}")
        self.action, self.spike_action, self.spike_factor, self.window = action, spike_action, float(spike_factor), window
        self.spike_quantile = float(spike_quantile)
        self.warmup_steps, self.spike_patience, self.vanish_patience = warmup_steps, spike_patience, vanish_patience
        self.vanish_threshold = vanish_threshold
        self.sync_every, self.max_skips = sync_every, max_skips
        self.grad_norm_every_n_steps = grad_norm_every_n_steps
        self.record: dict[str, Any] | None = None  # the first event, as written to explosion.json
        self.events = 0
        self.skipped = 0

    # -- state on the device, set up per fit -------------------------------------------------------
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        skips = "skip_step" in (self.action, self.spike_action)
        self._sync_every = self.sync_every or (1 if pl_module.device.type == "cpu" or skips else DEVICE_SYNC_EVERY)
        self._named_parameters = [(n, p) for n, p in pl_module.named_parameters() if p.requires_grad]
        self._rule = StepRule(self.spike_factor, self.spike_quantile, self.window, self.warmup_steps,
                              self.spike_patience, self.vanish_threshold, self.vanish_patience)
        self._unread: list[torch.Tensor] = []  # (loss, grad norm) of each unread step, on the device
        self._pending: list[tuple[int, int, int]] = []  # (global step, epoch, batch index) of unread steps
        self._loss: torch.Tensor | None = None
        self._last_loss: torch.Tensor | None = None  # of the last step, for the final check
        self._step_norm: torch.Tensor | None = None  # this batch's grad/norm, logged at its end
        self._param_norms: torch.Tensor | None = None
        self._param_names: list[str] = []
        self._batch_idx = 0  # of the current step; the final check may run before any step
        # The forward pass of a bad step already moved the BN running statistics: keep a copy to undo it.
        undoes = self.action != "warn" or self.spike_action != "warn"
        self._buffers = [b for b in pl_module.buffers()] if undoes else []
        self._buffer_copies = [b.clone() for b in self._buffers]

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch_idx = batch_idx
        if self._buffers and batch_idx % trainer.accumulate_grad_batches == 0:
            foreach_copy(self._buffer_copies, self._buffers)

    def on_before_backward(self, trainer: Trainer, pl_module: LightningModule, loss: torch.Tensor) -> None:
        loss = loss.detach()
        self._loss = loss if self._loss is None else self._loss + loss  # sum over accumulated micro-batches

    def on_before_optimizer_step(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        with_grad = [(n, p.grad) for n, p in self._named_parameters if p.grad is not None]
        if not with_grad:
            return
        norms = torch.stack(foreach_norm([g for _, g in with_grad])).float()
        total = torch.linalg.vector_norm(norms)
        self._param_norms, self._param_names, self._step_norm = norms, [n for n, _ in with_grad], total
        step = trainer.global_step
        if self.grad_norm_every_n_steps and step % self.grad_norm_every_n_steps == 0:
            self._log_module_norms(trainer)
        loss, self._loss = (self._loss if self._loss is not None else total.new_zeros(())), None
        self._last_loss = loss
        self._unread.append(torch.stack([loss.float(), total]))
        self._pending.append((step, trainer.current_epoch, self._batch_idx))
        if len(self._pending) >= self._sync_every:
            self._read(trainer, pl_module, optimizer)

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch: Any,
                           batch_idx: int) -> None:
        # Logged here, once the step's stop (if any) is decided: Lightning writes a row on a stop too.
        if self._step_norm is not None and is_logging_step(trainer):
            pl_module.log("grad/norm", self._step_norm, on_step=True, on_epoch=False)
        self._step_norm = None

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self._pending:  # events of the last, unread steps (sync_every > 1)
            self._read(trainer, pl_module, None)
        if self.record is None or not self.record["stopped"]:
            self._check_final_state(trainer, pl_module)

    def _check_final_state(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Before a run may end `completed`: every weight and buffer finite, and the last loss too.

        A `warn`-only detector, unread steps or an update that overflowed a finite gradient into an
        infinite weight all end here; such a run is `exploded`, never `completed` with a chance-level
        accuracy."""
        state = [t for t in pl_module.state_dict().values() if t.is_floating_point()]
        weights_finite = bool(torch.stack([torch.isfinite(t).all() for t in state]).all()) if state else True
        loss = self._last_loss
        if weights_finite and (loss is None or bool(torch.isfinite(loss))):
            return
        trigger = "nonfinite_weights" if not weights_finite else "nan_loss"
        value = math.nan if loss is None else float(loss)
        self._act(trainer, pl_module, None, trigger, value, math.nan,
                  (trainer.global_step, trainer.current_epoch, self._batch_idx), final=True)

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run must not forget: the first event and the skip budget already used."""
        return {"record": self.record, "events": self.events, "skipped": self.skipped}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.record, self.events, self.skipped = state_dict["record"], state_dict["events"], state_dict["skipped"]

    # -- host side: read the values, apply the rule, act ---------------------------------------------
    def _read(self, trainer: Trainer, pl_module: LightningModule, optimizer) -> None:
        """Apply the rule to every unread step in order, and act on the first event among them."""
        values = torch.stack(self._unread).tolist()  # the one host-device sync
        pending, self._pending, self._unread = self._pending, [], []
        first = None
        for slot, (loss, norm) in enumerate(values):
            event = self._rule.observe(loss, norm)
            if event is not None and first is None:
                first = (slot, event)
        if first is None:
            return
        slot, (trigger, value, reference) = first
        self._act(trainer, pl_module, optimizer, trigger, value, reference, pending[slot])

    def _act(self, trainer: Trainer, pl_module: LightningModule, optimizer, trigger: str, value: float,
             reference: float, where: tuple[int, int, int], final: bool = False) -> None:
        """Record one event and take its action; `final` (the end-of-training check) always stops.

        With an optimizer (a read before this step's update), a stop or skip drops this step's update and
        undoes its forward pass's BN statistics, also when the event is an earlier unread step's
        (`sync_every` > 1): weights and statistics then both stay those after the previous step."""
        step, epoch, batch_idx = where
        self.events += 1
        act = "stop" if final else self.action if trigger in NON_FINITE else self.spike_action
        if act == "skip_step" and self.skipped >= self.max_skips:
            act = "stop"
        if act in ("stop", "skip_step") and optimizer is not None:
            foreach_copy(self._buffers, self._buffer_copies)
            for group in optimizer.param_groups:
                for p in group["params"]:
                    p.grad = None  # the optimizer now leaves every parameter and its state alone
            self.skipped += act == "skip_step"
        checkpoint = self._save_finite_checkpoint(trainer, pl_module) if act == "stop" else None
        if self.record is None or act == "stop":  # the first event, unless a later one ends the run
            first = self.record
            self.record = self._describe(trainer, pl_module, trigger, value, reference, step, epoch, batch_idx,
                                         grads_of_step=trainer.global_step, checkpoint=checkpoint)
            if first is not None:
                self.record["first_event"] = {k: first[k] for k in ("step", "trigger", "value", "action")}
        self.record.update(events=self.events, skipped=self.skipped, stopped=act == "stop")
        for logger in trainer.loggers:
            logger.log_metrics({"explosion/step": step, "explosion/kind": TRIGGERS.index(trigger) + 1}, step=step)
        if trainer.is_global_zero:
            print(f"normlab: explosion detected: {trigger} at step {step} (epoch {epoch}, "
                  f"batch {batch_idx}): value {value:.4g}, running reference {reference:.4g} -> {act}",
                  file=sys.stderr)
            if trainer.log_dir is not None:
                write_json(Path(trainer.log_dir) / EXPLOSION_FILE, self.record)
        summary = RunSummary.find(trainer)
        fields = {k: self.record[k] for k in SUMMARY_FIELDS}
        if act == "stop":
            trainer.should_stop = True
            if summary is not None:
                summary.update(trainer, status="exploded", explosion=fields)
        elif summary is not None:
            summary.update(trainer, explosion=fields)

    def _save_finite_checkpoint(self, trainer: Trainer, pl_module: LightningModule) -> str | None:
        """Save `last.ckpt` if every weight is finite, and keep ModelCheckpoint from overwriting it."""
        callbacks = trainer.checkpoint_callbacks
        for callback in callbacks:
            callback.save_last = False  # the run is over: what is on disk now is its last finite state
        if not callbacks or callbacks[0].dirpath is None:
            return None
        state = [t for t in pl_module.state_dict().values() if t.is_floating_point()]
        if not bool(torch.stack([torch.isfinite(t).all() for t in state]).all()):
            return None
        name = ModelCheckpoint.CHECKPOINT_NAME_LAST + ModelCheckpoint.FILE_EXTENSION
        path = Path(callbacks[0].dirpath) / name
        trainer.save_checkpoint(path)
        return str(path)

    def _describe(self, trainer: Trainer, pl_module: LightningModule, trigger: str, value: float,
                  reference: float, step: int, epoch: int, batch_idx: int, grads_of_step: int,
                  checkpoint: str | None) -> dict:
        norms = self._param_norms.tolist() if self._param_norms is not None else []
        # Non-finite norms first (they name where the explosion is), then the largest.
        top = sorted(zip(self._param_names, norms), key=lambda item: (math.isfinite(item[1]), -abs(item[1])))
        groups = trainer.optimizers[0].param_groups if trainer.optimizers else []
        return {
            "step": step, "epoch": epoch, "batch_idx": batch_idx, "trigger": trigger,
            "value": json_number(value),
            "running_reference": None if math.isnan(reference) else reference,  # NaN: no history yet
            "spike_quantile": self.spike_quantile,
            "action": self.action if trigger in NON_FINITE else self.spike_action,
            "top_grad_norms": [{"parameter": name, "grad_norm": json_number(norm)}
                               for name, norm in top[:TOP_PARAMETERS]],
            "grad_norms_of_step": grads_of_step,
            "gn_weight": {name: float(m.gn_weight) for name, m in pl_module.named_modules()
                          if isinstance(m, GNPlus)},
            "lr": {group.get("name", str(i)): group["lr"] for i, group in enumerate(groups)},
            "checkpoint": checkpoint,
        }

    def _log_module_norms(self, trainer: Trainer) -> None:
        """`grad_norm/<module>`: each module's own parameters' gradient norm, from the per-parameter norms.

        Sent to the loggers directly (one sync every n steps): a value logged through `self.log` on
        some steps only would be repeated by Lightning on the steps in between.
        """
        modules = [name.rpartition(".")[0] for name in self._param_names]
        order = list(dict.fromkeys(modules))
        index = torch.tensor([order.index(m) for m in modules], device=self._param_norms.device)
        squares = torch.zeros(len(order), device=index.device).index_add_(0, index, self._param_norms ** 2)
        metrics = {f"grad_norm/{m}": norm for m, norm in zip(order, squares.sqrt().tolist())}
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=trainer.global_step)


def to_float32(x: float) -> float:
    """`x` rounded to the nearest float32 (as a device tensor of float32 would hold it), as a Python float."""
    try:
        return _FLOAT32.unpack(_FLOAT32.pack(x))[0]
    except OverflowError:  # beyond float32's range: the device's result is infinite
        return math.copysign(math.inf, x)


_FLOAT32 = struct.Struct("f")


class StepRule:
    """The detector's per-step rule, on the host: (loss, global gradient norm) of each step in order ->
    the event it raises, or None.

    The same arithmetic as the float32 device computation it replaces (torch.nanquantile over a
    window of NaN-padded slots, then comparisons), so that every decision is identical: the reference
    is the lower `spike_quantile` quantile of the finite n norms among the last `window` steps, at rank
    floor(q·(n−1)) with q rounded to float32 (as torch ranks it: at n = 11, q = 0.9 gives rank 8, not
    9), kept as a sorted list (one insertion and one removal per step); `spike_factor` × reference and
    `vanish_threshold` are rounded to float32 before the comparisons, as on the device.
    """

    def __init__(self, spike_factor: float, spike_quantile: float, window: int, warmup_steps: int,
                 spike_patience: int, vanish_threshold: float | None, vanish_patience: int):
        self.spike_factor, self.quantile = to_float32(spike_factor), to_float32(spike_quantile)
        self.window, self.warmup_steps, self.spike_patience = window, warmup_steps, spike_patience
        self.vanish_threshold = None if vanish_threshold is None else to_float32(vanish_threshold)
        self.vanish_patience = vanish_patience
        self._slots: deque[float | None] = deque()  # the window, oldest first; None: a non-finite norm
        self._sorted: list[float] = []  # the finite norms of the window, ascending
        self._seen = self._high_run = self._low_run = 0

    def reference(self) -> float:
        """The running reference before the next step (NaN while the window holds no finite norm)."""
        if not self._sorted:
            return math.nan
        return self._sorted[math.floor(self.quantile * (len(self._sorted) - 1))]

    def observe(self, loss: float, norm: float) -> tuple[str, float, float] | None:
        """Take one step; returns (trigger, value, reference) when it raises an event."""
        reference = self.reference()
        nan_loss, inf_grad = not math.isfinite(loss), not math.isfinite(norm)
        high = self._seen >= self.warmup_steps and norm > to_float32(self.spike_factor * reference)
        self._high_run = self._high_run + 1 if high else 0
        spike = self._high_run >= self.spike_patience
        if spike:
            self._high_run = 0  # the next event needs a new run
        vanish = False
        if self.vanish_threshold is not None:
            self._low_run = self._low_run + 1 if norm < self.vanish_threshold else 0
            vanish = self._low_run >= self.vanish_patience
            if vanish:
                self._low_run = 0
        self._push(None if inf_grad else norm)
        flags = {"nan_loss": nan_loss, "inf_grad": inf_grad, "spike": spike, "vanish": vanish}
        trigger = next((name for name, raised in flags.items() if raised), None)
        if trigger is None:
            return None
        return trigger, loss if nan_loss else norm, reference

    def _push(self, norm: float | None) -> None:
        if len(self._slots) == self.window:
            oldest = self._slots.popleft()
            if oldest is not None:
                del self._sorted[bisect.bisect_left(self._sorted, oldest)]
        self._slots.append(norm)
        if norm is not None:
            bisect.insort(self._sorted, norm)
        self._seen += 1


def json_number(x: float) -> float | str | None:
    """JSON has no NaN or infinity: write them as the strings "nan", "inf", "-inf" (None for no value)."""
    if x is None or math.isfinite(x):
        return x
    return str(x)
