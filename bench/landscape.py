"""Overhead of `LandscapeProbe` (K = 5 step sizes) on training: the same fit with no probe, with a
probe every 50 steps and every 10 steps, as a ratio of wall times (target at 50: ≤ 1.15×).

Small CNN with BN on Fashion-MNIST-shaped synthetic data (1×28×28 uint8, 10 classes, batch 128),
through the real data-module path and a real Trainer, 100 optimizer steps per fit, no validation.
Each probe costs one forward and K forward + backward passes, so the expected overhead is about
(0.4 + K)/n of a training step per step: ≈ 1.11× at n = 50 and ≈ 1.5× at n = 10.
"""
from __future__ import annotations

import torch
from pytorch_lightning import Trainer, seed_everything

from bench.timing import interleaved_medians, ratios
from callbacks.landscape import LandscapeProbe
from datamodules.base import ImageDataModule
from models.classifier import ImageClassifier

STEPS = 100
BATCH = 128
EVERY = (50, 10)


class SyntheticFashionMNIST(ImageDataModule):
    name, num_classes, in_channels, image_size = "synthetic_fashion_mnist", 10, 1, 28
    mean, std = (0.5,), (0.29,)

    def load_split(self, train: bool):
        n = STEPS * BATCH if train else BATCH
        generator = torch.Generator().manual_seed(int(train))
        images = torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=generator)
        return images, torch.randint(0, 10, (n,), generator=generator)


def fit(every_n_steps: int | None) -> None:
    seed_everything(0, verbose=False)
    model = ImageClassifier(backbone="small_cnn", norm="bn", norm_groups=4, in_channels=1, image_size=28,
                            optimizer="sgd", lr=0.05)
    data = SyntheticFashionMNIST(batch_size=BATCH, val_split=0, download=False)
    callbacks = [] if every_n_steps is None else [LandscapeProbe(every_n_steps=every_n_steps)]
    Trainer(accelerator="auto", devices=1, max_steps=STEPS, limit_val_batches=0, callbacks=callbacks,
            logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False).fit(model, data)


def run() -> list[dict]:
    candidates = {"no probe": lambda: fit(None), **{f"every {n}": (lambda n=n: fit(n)) for n in EVERY}}
    device = "cuda" if torch.cuda.is_available() else None
    medians = interleaved_medians(candidates, repeats=3, warmup=1, device=device)
    ratio = ratios(medians, "no probe")
    rows = []
    for name, seconds in medians.items():
        n = None if name == "no probe" else int(name.split()[1])
        probes = 0 if n is None else len(range(0, STEPS, n))
        rows.append({"case": name, "steps": STEPS, "probes": probes, "fit_s": seconds,
                     "ratio_to_no_probe": ratio[name],
                     "ms_per_probe": (seconds - medians["no probe"]) / probes * 1e3 if probes else 0.0})
    return rows
