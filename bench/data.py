"""Images per second each data path delivers, ready for the model (uint8 batch → on the device,
cropped, flipped, normalized float), for CIFAR-shaped data at batch 128 and 512:

- `torchvision_pil`: the pipeline of the GN paper's code (per-image PIL RandomCrop(32, 4) + flip +
  ToTensor + Normalize in a DataLoader), the reference;
- `dataloader`: the regular path (one index per batch, batched augmentation after the transfer);
- `dataloader_2_workers`: the same with 2 persistent workers;
- `on_device`: the whole set on the device, batches sliced there.

`python -m bench data`. On a GPU machine the device is the GPU (the regular paths pin memory and
copy each batch); here it is the CPU. The data are random uint8 images (no download needed).
"""
from __future__ import annotations

import itertools
import math
from types import SimpleNamespace

import torch
from lightning_fabric.utilities.apply_func import move_data_to_device

from bench.timing import interleaved_medians, ratios
from datamodules import CIFAR10DataModule

NUM_IMAGES = 10_000
BATCHES_PER_SAMPLE = 10
BATCH_SIZES = (128, 512)


class RandomCIFAR(CIFAR10DataModule):
    """CIFAR-10's module (augmentation, normalization) on random images of its shape."""

    def load_split(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(int(train))
        n = NUM_IMAGES if train else 1_000
        return (torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=generator),
                torch.randint(0, 10, (n,), generator=generator))


def module_pipeline(device: torch.device, batch_size: int, **options):
    """A callable taking the next BATCHES_PER_SAMPLE batches through transfer + on_after_batch_transfer."""
    dm = RandomCIFAR(batch_size=batch_size, val_split=0, download=False, seed=0,
                     pin_memory=device.type == "cuda" and not options.get("on_device"), **options)
    # what the module reads from its Trainer: the device, and rank 0 of 1
    dm.trainer = SimpleNamespace(global_rank=0, world_size=1, training=False, num_training_batches=math.inf,
                                 strategy=SimpleNamespace(root_device=device))
    dm.setup("fit")
    batches = endless(dm.train_dataloader())

    def take():
        for _ in range(BATCHES_PER_SAMPLE):
            x, _ = dm.on_after_batch_transfer(move_data_to_device(next(batches), device), 0)
        return x

    return take


def torchvision_pipeline(device: torch.device, batch_size: int):
    """The loader of the GN paper's code: torchvision transforms on PIL images, one image at a time."""
    import torchvision.transforms as T
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset

    images = RandomCIFAR().load_split(train=True)[0].permute(0, 2, 3, 1).numpy()
    transform = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(),
                           T.Normalize(RandomCIFAR.mean, RandomCIFAR.std)])

    class PILImages(Dataset):
        def __len__(self):
            return len(images)

        def __getitem__(self, i):
            return transform(Image.fromarray(images[i])), 0

    batches = endless(DataLoader(PILImages(), batch_size=batch_size, shuffle=True, drop_last=True,
                                 pin_memory=device.type == "cuda"))

    def take():
        for _ in range(BATCHES_PER_SAMPLE):
            x, _ = move_data_to_device(next(batches), device)
        return x

    return take


def endless(loader):
    """Batches across epoch ends (setting each new epoch as Lightning does)."""
    for epoch in itertools.count():
        if hasattr(loader, "sampler") and hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)
        yield from loader


def run() -> list[dict]:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rows = []
    for batch_size in BATCH_SIZES:
        candidates = {
            "torchvision_pil": torchvision_pipeline(device, batch_size),
            "dataloader": module_pipeline(device, batch_size),
            "dataloader_2_workers": module_pipeline(device, batch_size, num_workers=2,
                                                    persistent_workers=True),
            "on_device": module_pipeline(device, batch_size, on_device=True),
        }
        medians = interleaved_medians(candidates, repeats=5, warmup=1, device=device)
        speedup = ratios(medians, "torchvision_pil")
        for name, seconds in medians.items():
            rows.append({"batch": batch_size, "path": name, "device": device.type,
                         "images_per_s": round(BATCHES_PER_SAMPLE * batch_size / seconds),
                         "speedup_vs_torchvision": round(1 / speedup[name], 2)})
    return rows

