"""Cost of `ExplosionDetector` per training step, at batch 4 (where a step is cheapest, so the detector's
share is largest): the quickstart's small CNN with BN (1×28×28, Adam, one-cycle, a row every 20 steps)
trained `STEPS` steps inside a Trainer, without the detector and with it (`sync_every` at its CPU default,
1: a host read every step, and at 16, the accelerator default). Fits are interleaved (bench.timing).

Two measures of the detector's cost: the difference of the fits' medians (what a run pays, but this
machine's noise is of the same order), and the detector's own time, its per-step hooks timed inside the
fit (`perf_counter` around each call), over the step time of the fit without it. Target (issue 27):
≤ 3 % of a batch-4 step.
"""
from __future__ import annotations

import statistics
import time

import torch
from pytorch_lightning import Trainer
from torch.utils.data import DataLoader, TensorDataset

from bench.timing import interleaved_medians
from callbacks.explosion import ExplosionDetector
from models.classifier import ImageClassifier

STEPS, BATCH, LOG_EVERY = 300, 4, 20
PER_STEP_HOOKS = ("on_train_batch_start", "on_before_backward", "on_before_optimizer_step", "on_train_batch_end")


def timed_detector(detector_args: dict, spent: list[float]) -> ExplosionDetector:
    """A detector whose per-step hooks add their time to `spent[0]`."""
    detector = ExplosionDetector(**detector_args)
    for name in PER_STEP_HOOKS:
        def timed(*args, hook=getattr(detector, name), **kwargs):
            start = time.perf_counter()
            hook(*args, **kwargs)
            spent[0] += time.perf_counter() - start
        setattr(detector, name, timed)  # Lightning calls a callback's hooks through getattr
    return detector


def fit_steps(detector_args: dict | None, hook_seconds: list[float] | None = None) -> None:
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(STEPS * BATCH, 1, 28, 28), torch.randint(0, 10, (STEPS * BATCH,)))
    model = ImageClassifier(norm="bn", norm_groups=4, in_channels=1, image_size=28, optimizer="adam", lr=0.003,
                            schedule="onecycle")
    spent = [0.0]
    callbacks = [timed_detector(detector_args, spent)] if detector_args is not None else []
    trainer = Trainer(max_steps=STEPS, accelerator="auto", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=LOG_EVERY,
                      callbacks=callbacks)
    trainer.fit(model, DataLoader(data, batch_size=BATCH))
    if hook_seconds is not None:
        hook_seconds.append(spent[0])


def run() -> list[dict]:
    hooks = {"detector, sync_every=1 (CPU default)": [], "detector, sync_every=16": []}
    candidates = {
        "no detector": lambda: fit_steps(None),
        "detector, sync_every=1 (CPU default)": lambda: fit_steps({}, hooks["detector, sync_every=1 (CPU default)"]),
        "detector, sync_every=16": lambda: fit_steps({"sync_every": 16}, hooks["detector, sync_every=16"]),
    }
    medians = interleaved_medians(candidates, repeats=5, warmup=1,
                                  device="cuda" if torch.cuda.is_available() else None)
    step = medians["no detector"] / STEPS
    rows = []
    for name, seconds in medians.items():
        own = statistics.median(hooks[name]) / STEPS if name in hooks else None  # warm-up fits included
        rows.append({"case": name, "batch": BATCH, "ms_per_step": round(1e3 * seconds / STEPS, 3),
                     "ratio_to_none": round(seconds / medians["no detector"], 3),
                     "detector_ms_per_step": None if own is None else round(1e3 * own, 4),
                     "detector_share_of_step": None if own is None else f"{100 * own / step:.2f} %"})
    return rows
