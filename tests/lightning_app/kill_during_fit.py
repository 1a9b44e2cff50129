"""`python -m tests.lightning_app.kill_during_fit MODE STEP ARGS...`: `lightning fit ARGS` that SIGKILLs
itself at training step STEP (the fault injector of test_reliability_resume.py).

MODE `after_step`: right after step STEP and its checkpoints, mid-epoch unless STEP ends one.
MODE `mid_write`: halfway through writing the checkpoint of step STEP (half the bytes are on disk).
SIGKILL is what a pre-empted or OOM-killed job gets: no exception handler, no atexit, no flush runs.
"""
import io
import os
import signal
import sys

import torch
from pytorch_lightning import Callback

from lightning_app import cli
from lightning_app.command import main


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillAt(Callback):
    def __init__(self, mode: str, step: int):
        self.mode, self.step = mode, step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.mode == "mid_write" and trainer.global_step == self.step - 1:
            real_save = torch.save

            def save_half_then_die(obj, f, *args, **kwargs):
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                f.flush()
                die()

            torch.save = save_half_then_die

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.mode == "after_step" and trainer.global_step == self.step:
            die()


if __name__ == "__main__":
    mode, step, args = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    build_trainer = cli.NormlabCLI.instantiate_trainer

    def with_fault(self, **kwargs):
        trainer = build_trainer(self, **kwargs)
        trainer.callbacks.append(KillAt(mode, step))  # last: after the checkpoint callbacks of the step
        return trainer

    cli.NormlabCLI.instantiate_trainer = with_fault
    main(args)
