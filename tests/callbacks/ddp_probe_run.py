"""A 2-process CPU DDP fit (gloo) of `LinearSoftmax` with BN, with or without `LandscapeProbe`, for
`test_landscape_ddp.py`: `python -m tests.callbacks.ddp_probe_run OUT_DIR {probe|plain}`.

Each rank saves `OUT_DIR/<mode>_rank<r>.pt`: the `StateRecorder` states at the probed steps (its own
batch, parameters, buffers), the metrics its loggers received, and its final weights and optimizer state.
"""
import sys
from pathlib import Path

import torch
from pytorch_lightning import Trainer, seed_everything

from callbacks.landscape import LandscapeProbe
from tests.callbacks.probe_models import LinearSoftmax, MetricsCapture, StateRecorder, classification_loader

EVERY, STEPS, LR = 2, 5, 0.05


def main(out_dir: str, mode: str) -> None:
    seed_everything(0)
    model = LinearSoftmax(batch_norm=True, lr=LR)
    recorder, capture = StateRecorder(), MetricsCapture()
    callbacks = [recorder] + ([LandscapeProbe(every_n_steps=EVERY)] if mode == "probe" else [])
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=STEPS, callbacks=callbacks,
                      logger=[capture], enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, deterministic=True, log_every_n_steps=1000)
    trainer.fit(model, classification_loader(n=128, batch_size=16))
    keep = ("params", "buffers", "batch", "batch_rng")
    torch.save({"states": {s: {k: v[k] for k in keep} for s, v in recorder.states.items() if s % EVERY == 0},
                "metrics": capture.rows, "final": model.state_dict(),
                "optimizer": trainer.optimizers[0].state_dict()},
               Path(out_dir) / f"{mode}_rank{trainer.global_rank}.pt")


if __name__ == "__main__":
    main(*sys.argv[1:])
