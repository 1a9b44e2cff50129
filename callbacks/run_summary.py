"""`RunSummary`: keeps `summary.json` of the run directory up to date (always on).

`{"status": "running"|"completed"|"exploded"|"failed"|"interrupted", "best_val_acc", "final_val_acc",
"test_acc", "epochs", "steps", "wall_seconds", "explosion": null|{...}, "data_source"}`. A sweep reads `status`
to skip finished runs (`lightning_app/run/status.py` says which are); the report reads the
accuracies. `interrupted`: stopped by SIGTERM/SIGINT (a scheduler, `timeout`, Ctrl-C), resumable;
`failed`: an error. Wall time, the best and last validation accuracy and the epoch count survive a
resume through the callback's checkpointed state. Other callbacks add fields with `update(...)`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from pytorch_lightning import Callback, LightningModule, Trainer
from pytorch_lightning.utilities.exceptions import SIGTERMException

from callbacks.compat import layer_sync
from callbacks.run_files import write_json
from callbacks.summary_file import COMPLETED, FAILED, INTERRUPTED, RUNNING, SUMMARY_FILE
from datamodules.sampling import per_device_batch_size


def batch_sizes(trainer: Trainer) -> dict[str, int]:
    """The global batch, each device's share, and the batch the BN statistics see.

    The GN paper's batch-size axis is the normalization batch: per device without synced BN, the
    global batch with `sync_batchnorm`. Recorded so runs on different device counts stay comparable.
    """
    global_batch = getattr(trainer.datamodule, "batch_size", None) if trainer.datamodule is not None else None
    if not isinstance(global_batch, int):
        return {}
    per_device = per_device_batch_size(global_batch, trainer.world_size)
    synced = layer_sync(trainer.strategy) is not None
    return {"global_batch_size": global_batch, "per_device_batch_size": per_device,
            "norm_batch_size": global_batch if synced else per_device, "world_size": trainer.world_size}


def is_interruption(exception: BaseException) -> bool:
    """Ctrl-C (KeyboardInterrupt) or SIGTERM (Lightning stops the loop with SIGTERMException)."""
    return isinstance(exception, (KeyboardInterrupt, SIGTERMException))


class RunSummary(Callback):
    def __init__(self):
        self.summary: dict[str, Any] = {
            "status": RUNNING, "best_val_acc": None, "final_val_acc": None, "test_acc": None,
            "epochs": 0, "steps": 0, "wall_seconds": 0.0, "explosion": None,
        }
        self._elapsed_before = 0.0  # wall time of earlier segments of a resumed run
        self._started: float | None = None

    # -- public: other callbacks record their outcome here -------------------------------------------
    def update(self, trainer: Trainer, **fields) -> None:
        self.summary.update(fields)
        self._write(trainer)

    @staticmethod
    def find(trainer: Trainer) -> "RunSummary | None":
        return next((c for c in trainer.callbacks if isinstance(c, RunSummary)), None)

    # -- hooks -------------------------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._started = time.perf_counter()
        self.summary["status"] = RUNNING
        self.summary.update(batch_sizes(trainer))
        self.summary["data_source"] = getattr(trainer.datamodule, "data_source", None)  # the folder read
        self._write(trainer)

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or "val/acc" not in trainer.callback_metrics:
            return
        acc = float(trainer.callback_metrics["val/acc"])
        best = self.summary["best_val_acc"]
        self.summary.update(final_val_acc=acc, best_val_acc=acc if best is None else max(best, acc))

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self.summary["epochs"] = trainer.current_epoch + 1  # the counter moves on only after this hook
        self._write(trainer)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.summary["status"] == RUNNING:
            self.summary["status"] = FAILED if trainer.interrupted else COMPLETED
        self._write(trainer)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if "test/acc" in trainer.callback_metrics:
            self.summary["test_acc"] = float(trainer.callback_metrics["test/acc"])
            self._write(trainer)

    def on_exception(self, trainer: Trainer, pl_module: LightningModule, exception: BaseException) -> None:
        if self._started is None:  # failed while setting up (bad data files): leave the run directory as it was
            return
        if self.summary["status"] == RUNNING and is_interruption(exception):
            self.summary["status"] = INTERRUPTED
        elif self.summary["status"] == RUNNING:
            self.summary["status"] = FAILED
            self.summary["error"] = f"{type(exception).__name__}: {exception}".splitlines()[0][:500]
        try:
            self._write(trainer)
        except OSError:
            # The full or read-only disk that stopped the run may refuse this write too. The exception in
            # flight is the one to report; the CLI reads summary.json back and says what it holds.
            pass

    def state_dict(self) -> dict[str, Any]:
        return {"best_val_acc": self.summary["best_val_acc"], "final_val_acc": self.summary["final_val_acc"],
                "epochs": self.summary["epochs"], "wall_seconds": self._wall_seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # final_val_acc and epochs: a resume from the end of training (to run a missing final test) trains
        # and validates nothing that would set them again
        self.summary["best_val_acc"] = state_dict.get("best_val_acc")
        self.summary["final_val_acc"] = state_dict.get("final_val_acc")
        self.summary["epochs"] = state_dict.get("epochs", 0)
        self._elapsed_before = state_dict.get("wall_seconds", 0.0)

    # -- internals ---------------------------------------------------------------------------------
    def _wall_seconds(self) -> float:
        running = time.perf_counter() - self._started if self._started is not None else 0.0
        return round(self._elapsed_before + running, 3)

    def _write(self, trainer: Trainer) -> None:
        log_dir = trainer.log_dir  # a collective under DDP: every rank must ask, only rank 0 writes
        if not trainer.is_global_zero or log_dir is None:
            return
        self.summary.update(steps=trainer.global_step, wall_seconds=self._wall_seconds())
        write_json(Path(log_dir) / SUMMARY_FILE, self.summary)
