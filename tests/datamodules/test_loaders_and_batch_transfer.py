"""The loaders of the shared base (datamodules/base.py) and what `on_after_batch_transfer` makes of their
batches, on generated MNIST-format files (100 training images, 20 test images):

- every loader is built with the data options (workers, pinned memory, persistent workers), as torch's
  DataLoader reports them;
- evaluation (val, test, predict) yields every image of its split once, in order, in ceil(n / batch)
  batches, the number `len()` announces, on both data paths; predict is the test file, in file order;
- an epoch of training batches is a shuffled order of the training split, the last partial batch kept
  or dropped as `drop_last` says; a loader made after a saved state continues after the saved batch, and a
  finished epoch gives way to the next one;
- with `on_device`, the data, the batches and the normalized batches live on the Trainer's device (the
  CPU without a Trainer); a Trainer on torch's `meta` device stands in for an accelerator;
- a black image normalizes to exactly -mean/std rounded to float32, for every registered data set;
- a crop alone and a flip alone each augment training batches (never evaluation batches), and outside a
  fit a transferred batch is not counted as trained.
"""
import math

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning import Trainer
from pytorch_lightning.strategies import SingleDeviceStrategy

from datamodules import DATAMODULES, MNISTDataModule
from datamodules.base import TrainingBatch
from tests.fakedata import write_fake_mnist

N_TRAIN, N_TEST = 100, 20


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mnist")
    return folder, write_fake_mnist(folder, n_train=N_TRAIN, n_test=N_TEST)


def loaded(mnist, **options) -> MNISTDataModule:
    """The MNIST module on the generated files, set up (no Trainer unless one is attached later)."""
    dm = MNISTDataModule(data_dir=str(mnist[0]), download=False, **options)
    dm.setup("fit")
    return dm


def one_epoch(loader) -> list[TrainingBatch]:
    batches = list(loader)
    assert all(isinstance(batch, TrainingBatch) for batch in batches)
    return batches


def test_every_loader_is_built_with_the_data_options(mnist):
    dm = loaded(mnist, val_split=20, num_workers=2, pin_memory=True, persistent_workers=True)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader(), dm.predict_dataloader()):
        assert (loader.num_workers, loader.pin_memory, loader.persistent_workers) == (2, True, True)


@pytest.mark.parametrize("on_device", [False, True], ids=["dataloader", "on_device"])
@pytest.mark.parametrize("stage", ["val", "test", "predict"])
def test_evaluation_yields_each_image_once_in_order_in_the_announced_batches(mnist, on_device, stage):
    dm = loaded(mnist, val_split=37, eval_batch_size=16, on_device=on_device)  # val: 37 = 2·16 + 5
    loader = getattr(dm, f"{stage}_dataloader")()
    batches = list(loader)
    n = 37 if stage == "val" else N_TEST  # test: 20 = 16 + 4
    assert len(loader) == len(batches) == math.ceil(n / 16)
    assert [len(labels) for _, labels in batches] == [16] * (n // 16) + [n % 16]
    if stage != "val":  # the official test split, each image once, in file order
        labels = torch.cat([labels for _, labels in batches])
        assert labels.tolist() == mnist[1]["t10k_labels"].tolist()
        images = torch.cat([images for images, _ in batches])[:, 0]
        assert torch.equal(images, torch.from_numpy(mnist[1]["t10k_images"]))


@pytest.mark.parametrize("on_device", [False, True], ids=["dataloader", "on_device"])
@pytest.mark.parametrize("drop_last,sizes", [(True, [8, 8]), (False, [8, 8, 4])])
def test_an_epoch_is_a_shuffled_order_of_the_training_split(mnist, on_device, drop_last, sizes):
    dm = loaded(mnist, val_split=80, batch_size=8, drop_last=drop_last, on_device=on_device)  # 20 = 2·8 + 4
    batches = one_epoch(dm.train_dataloader())
    assert [len(batch.indices) for batch in batches] == sizes
    order = torch.cat([batch.indices for batch in batches]).tolist()
    assert len(set(order)) == len(order) and set(order) <= set(range(20))
    assert order != sorted(order)  # shuffled, not the split's own order
    if not drop_last:
        assert sorted(order) == list(range(20))


@pytest.mark.parametrize("on_device", [False, True], ids=["dataloader", "on_device"])
@pytest.mark.parametrize("saved,epoch,positions", [
    ({"epoch": 0, "batches_done": 1}, 0, [1]),  # mid-epoch: the rest of that epoch
    ({"epoch": 0, "batches_done": 2}, 1, [0, 1]),  # the epoch was finished: all of the next one
], ids=["mid-epoch", "finished epoch"])
def test_a_loader_made_after_a_saved_state_continues_after_it(mnist, on_device, saved, epoch, positions):
    dm = loaded(mnist, val_split=80, batch_size=8, on_device=on_device)  # 2 batches an epoch
    dm.load_state_dict(saved)
    batches = one_epoch(dm.train_dataloader())
    assert [(batch.epoch, batch.position) for batch in batches] == [(epoch, p) for p in positions]


def meta_trainer() -> Trainer:
    """A Trainer whose strategy's root device is torch's `meta` device: a device that is not the CPU."""
    return Trainer(accelerator="cpu", strategy=SingleDeviceStrategy(device=torch.device("meta")),
                   logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False)


@pytest.mark.parametrize("trainer,device", [(None, "cpu"), (meta_trainer, "meta")],
                         ids=["no trainer", "meta"])
def test_on_device_data_and_batches_live_on_the_trainers_device(mnist, trainer, device):
    dm = MNISTDataModule(data_dir=str(mnist[0]), download=False, val_split=20, batch_size=16, on_device=True)
    dm.trainer = trainer() if trainer else None
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert [t.device.type for t in (batch.images, batch.labels, batch.indices)] == [device] * 3
    images, labels = next(iter(dm.val_dataloader()))
    assert images.device.type == labels.device.type == device
    for transferred in (batch, (images, labels)):
        normalized, targets = dm.on_after_batch_transfer(transferred, 0)
        assert normalized.device.type == targets.device.type == device and normalized.dtype == torch.float32


@pytest.mark.parametrize("name", sorted(DATAMODULES))
def test_a_black_image_normalizes_to_exactly_minus_mean_over_std(tmp_path, name):
    cls = DATAMODULES[name]
    dm = cls(data_dir=str(tmp_path), download=False)
    black = torch.zeros(2, cls.in_channels, cls.image_size, cls.image_size, dtype=torch.uint8)
    normalized, _ = dm.on_after_batch_transfer((black, torch.zeros(2, dtype=torch.long)), 0)
    for channel, (mean, std) in enumerate(zip(cls.mean, cls.std)):  # Python's doubles, rounded once
        assert (normalized[:, channel] == torch.tensor(-mean / std, dtype=torch.float32)).all(), channel
    white, _ = dm.on_after_batch_transfer((black + 255, torch.zeros(2, dtype=torch.long)), 0)
    expected = torch.tensor([(1 - m) / s for m, s in zip(cls.mean, cls.std)], dtype=torch.float32)
    torch.testing.assert_close(white[0, :, 0, 0], expected, rtol=1e-6, atol=0)


class RawPixels(MNISTDataModule):
    """MNIST whose normalization is the identity (x / 255 / (1/255)): augmented pixels read as they are."""
    mean = (0.0,)
    std = (1 / 255,)


@pytest.mark.parametrize("crop_padding,flip", [(4, False), (0, True)], ids=["crop alone", "flip alone"])
def test_a_crop_alone_and_a_flip_alone_each_augment_training_batches(mnist, crop_padding, flip):
    dm = RawPixels(data_dir=str(mnist[0]), download=False, val_split=20, batch_size=16,
                   crop_padding=crop_padding, horizontal_flip=flip)
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    images = batch.images.float()
    augmented, labels = dm.on_after_batch_transfer(batch, 0)
    assert torch.equal(labels, batch.labels) and augmented.shape == images.shape
    if flip:  # each image as it is or mirrored left-right
        mirrored = [torch.equal(a, x.flip(-1)) for a, x in zip(augmented, images)]
        assert all(m or torch.equal(a, x) for m, a, x in zip(mirrored, augmented, images))
        assert 0 < sum(mirrored) < 16
    else:  # each image a 28×28 window of itself padded with 4 black pixels
        padded = F.pad(images, [4] * 4)
        assert all(any(torch.equal(a, p[:, dy:dy + 28, dx:dx + 28]) for dy in range(9) for dx in range(9))
                   for a, p in zip(augmented, padded))
    assert not torch.equal(augmented, images)
    evaluated, _ = dm.on_after_batch_transfer((batch.images, batch.labels), 0)
    assert torch.equal(evaluated, images)  # evaluation batches are never augmented
    assert dm.state_dict() == {"epoch": 0, "batches_done": 0}  # no Trainer, not training: nothing counted
