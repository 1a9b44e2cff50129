"""Lightning's SLURM auto-requeue, taken out of the signal handler to the next batch boundary.

SLURM sends USR1 before a job's time limit (`--signal=SIGUSR1@90`, or `scancel --signal=USR1`).
Lightning's own handler saves `hpc_ckpt_N.ckpt` and runs `scontrol requeue` inside the handler, that
is at whatever line the training happened to be on. A checkpoint taken there can hold half a step:
on the test cluster a run resumed from it ended one optimizer step short of the uninterrupted run
(179 of 180 steps), the batch handed out but not yet stepped being counted as done. Here the handler
only notes the signal; the same save-and-requeue (Lightning's code) runs at the end of the current
training batch, or of a validation run, where the model, optimizer, loops and data order agree. Under
DDP the ranks agree first (one all-reduce per batch, only under SLURM auto-requeue), so all of them
save at the same step.
"""
from __future__ import annotations

import signal

from lightning_fabric.plugins.environments import SLURMEnvironment
from pytorch_lightning import Callback, LightningModule, Trainer

from callbacks.compat import cluster_environment, slurm_requeue_handler


class SlurmRequeueAtBatchEnd(Callback):
    def __init__(self) -> None:
        self._signum: int | None = None  # the requeue signal, while this callback handles it
        self._previous = None
        self._signalled = False
        self._done = False

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        environment = cluster_environment(trainer)
        if stage != "fit" or not isinstance(environment, SLURMEnvironment) or not environment.auto_requeue:
            return
        # setup runs before the Trainer registers its handlers, and Lightning installs its requeue
        # handler only where there is none: this one takes its place.
        self._signum = environment.requeue_signal
        self._previous = signal.signal(self._signum, self._note)

    def _note(self, signum, frame) -> None:
        self._signalled = True

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx) -> None:
        self._requeue_if_signalled(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if not trainer.sanity_checking:
            self._requeue_if_signalled(trainer)

    def _requeue_if_signalled(self, trainer: Trainer) -> None:
        if self._signum is None or self._done:
            return
        signalled = self._signalled
        if trainer.world_size > 1:
            signalled = trainer.strategy.reduce_boolean_decision(signalled, all=False)
        if signalled:
            self._done = True  # SLURM ends this job once requeued; the requeued one starts afresh
            slurm_requeue_handler(trainer)(self._signum, None)

    def teardown(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self._signum is not None:
            signal.signal(self._signum, self._previous)
            self._signum = None
