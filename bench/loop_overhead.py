"""Training-loop overhead: one epoch of `Trainer.fit` against a minimal hand-written PyTorch loop.

Both do the same work on the same data: the small CNN on Fashion-MNIST-shaped uint8 images held in
memory, batch 128, Adam with the per-step schedule, cross-entropy and the accuracy metric, batches
normalized on the fly exactly as the data module does. The Lightning side goes through the real
ImageClassifier and ImageDataModule; its time includes the Trainer's own set-up. Target: ≤ 1.05×.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from pytorch_lightning import Trainer

from bench.timing import interleaved_medians, peak_host_rss_mb, ratios
from datamodules.base import ImageDataModule
from models.classifier import ImageClassifier

N_IMAGES, BATCH = 12_800, 128


class SyntheticFashionMNIST(ImageDataModule):
    name, num_classes, in_channels, image_size, mean, std = "synthetic", 10, 1, 28, (0.286,), (0.353,)

    def load_split(self, train: bool):
        g = torch.Generator().manual_seed(0 if train else 1)
        n = N_IMAGES if train else BATCH
        return torch.randint(0, 256, (n, 1, 28, 28), dtype=torch.uint8, generator=g), torch.randint(0, 10, (n,), generator=g)


def make_model() -> ImageClassifier:
    return ImageClassifier(backbone="small_cnn", norm="bn", norm_groups=4, num_classes=10, in_channels=1,
                           image_size=28, optimizer="adam", lr=1e-3, schedule="onecycle")


def lightning_epoch() -> None:
    trainer = Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                      num_sanity_val_steps=0)
    trainer.fit(make_model(), SyntheticFashionMNIST(batch_size=BATCH, val_split=0))


def plain_epoch() -> None:
    model, data = make_model(), SyntheticFashionMNIST(batch_size=BATCH, val_split=0)
    data.setup("fit")
    images, labels = data._splits["train"].images, data._splits["train"].labels
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    steps = N_IMAGES // BATCH
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=steps)
    mean, std = torch.tensor(data.mean).view(1, -1, 1, 1), torch.tensor(data.std).view(1, -1, 1, 1)
    model.train()
    for index in torch.randperm(N_IMAGES)[: steps * BATCH].view(steps, BATCH):
        x = (images[index].float().div_(255) - mean) / std
        y = labels[index]
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        model.train_acc(logits, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()


def run() -> list[dict]:
    medians = interleaved_medians({"plain PyTorch loop": plain_epoch, "lightning fit": lightning_epoch},
                                  repeats=5, warmup=1)
    ratio = ratios(medians, "plain PyTorch loop")
    return [{"case": name, "epoch_s": medians[name], "images_per_s": N_IMAGES / medians[name],
             "ratio_to_plain": ratio[name], "peak_rss_mb": peak_host_rss_mb()} for name in medians]
