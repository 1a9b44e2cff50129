"""Overhead of the measuring callbacks on training: the same fit with no probe, with a `LandscapeProbe`
(K = 5 step sizes) every 50 steps and every 10 steps, and with `ActivationStatistics` at its defaults
(every 50 steps), as a ratio of wall times (targets at 50: ≤ 1.15× and ≤ 1.10×).

Small CNN with BN on Fashion-MNIST-shaped synthetic data (1×28×28 uint8, 10 classes, batch 128),
through the real data-module path and a real Trainer, 100 optimizer steps per fit, no validation.
Each probe costs one forward and K forward + backward passes, so the expected overhead is about
(0.4 + K)/n of a training step per step: ≈ 1.11× at n = 50 and ≈ 1.5× at n = 10. The activation
statistics read the step's own forward (per-channel sums in float64, three channels' histograms,
one JSON line per histogram), so they should cost a small fraction of one step per measurement.
"""
from __future__ import annotations

import tempfile
from typing import Callable

import torch
from pytorch_lightning import Callback, Trainer, seed_everything

from bench.timing import interleaved_medians, ratios
from callbacks.activation_stats import ActivationStatistics
from callbacks.landscape import LandscapeProbe
from datamodules.base import ImageDataModule
from models.classifier import ImageClassifier

STEPS = 100
BATCH = 128
# case: (measured every n steps, the callbacks); "no probe" is the baseline
CASES: dict[str, tuple[int | None, Callable[[], list[Callback]]]] = {
    "no probe": (None, list),
    **{f"every {n}": (n, lambda n=n: [LandscapeProbe(every_n_steps=n)]) for n in (50, 10)},
    "activation stats, every 50": (50, lambda: [ActivationStatistics()]),
}


class SyntheticFashionMNIST(ImageDataModule):
    name, num_classes, in_channels, image_size = "synthetic_fashion_mnist", 10, 1, 28
    mean, std = (0.5,), (0.29,)

    def load_split(self, train: bool):
        n = STEPS * BATCH if train else BATCH
        generator = torch.Generator().manual_seed(int(train))
        images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator)
        return images, torch.randint(0, 10, (n,), generator=generator)


def fit(callbacks: list[Callback], root: str) -> None:
    seed_everything(0, verbose=False)
    model = ImageClassifier(backbone="small_cnn", norm="bn", norm_groups=4, in_channels=1, image_size=28,
                            optimizer="sgd", lr=0.05)
    data = SyntheticFashionMNIST(batch_size=BATCH, val_split=0, download=False)
    Trainer(accelerator="auto", devices=1, max_steps=STEPS, limit_val_batches=0, callbacks=callbacks,
            logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
            default_root_dir=root).fit(model, data)  # the root takes the activation histograms


def run() -> list[dict]:
    device = "cuda" if torch.cuda.is_available() else None
    with tempfile.TemporaryDirectory() as root:
        candidates = {name: (lambda make=make: fit(make(), root)) for name, (_, make) in CASES.items()}
        medians = interleaved_medians(candidates, repeats=3, warmup=1, device=device)
    ratio = ratios(medians, "no probe")
    rows = []
    for name, seconds in medians.items():
        n = CASES[name][0]
        probes = 0 if n is None else len(range(0, STEPS, n))
        rows.append({"case": name, "steps": STEPS, "probes": probes, "fit_s": seconds,
                     "ratio_to_no_probe": ratio[name],
                     "ms_per_probe": (seconds - medians["no probe"]) / probes * 1e3 if probes else 0.0})
    return rows
