"""Cost of `ExplosionDetector` per training step: the quickstart's small CNN (batch 128, 1×28×28)
trained for a few steps inside a Trainer, without the detector, with it reading its device flags
every step (`sync_every=1`, the default) and every 16 steps. Candidates are interleaved (bench.timing).
"""
from __future__ import annotations

import torch
from pytorch_lightning import Trainer
from torch.utils.data import DataLoader, TensorDataset

from bench.timing import interleaved_medians, ratios
from callbacks.explosion import ExplosionDetector
from models.classifier import ImageClassifier

STEPS, BATCH = 30, 128


def fit_steps(detector_args: dict | None) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(STEPS * BATCH, 1, 28, 28), torch.randint(0, 10, (STEPS * BATCH,)))
    model = ImageClassifier(norm="bn", norm_groups=4, in_channels=1, image_size=28, optimizer="adam", lr=0.003,
                            schedule="onecycle")
    callbacks = [ExplosionDetector(**detector_args)] if detector_args is not None else []
    trainer = Trainer(max_steps=STEPS, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, callbacks=callbacks)
    trainer.fit(model, DataLoader(data, batch_size=BATCH))


def run() -> list[dict]:
    candidates = {
        "no detector": lambda: fit_steps(None),
        "detector, sync_every=1": lambda: fit_steps({}),
        "detector, sync_every=16": lambda: fit_steps({"sync_every": 16}),
    }
    medians = interleaved_medians(candidates, repeats=5, warmup=1,
                                  device="cuda" if torch.cuda.is_available() else None)
    ratio = ratios(medians, "no detector")
    return [{"case": name, "ms_per_step": 1000 * seconds / STEPS, "ratio_to_none": ratio[name]}
            for name, seconds in medians.items()]
