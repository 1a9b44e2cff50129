"""The two data paths (DataLoader / on_device) deliver identical batches; augmentation, normalization,
per-rank batches under DDP (without launching it) and mid-epoch resuming, on generated CIFAR files."""
from types import SimpleNamespace

import pytest
import torch

from datamodules import CIFAR10DataModule
from datamodules.base import TrainingBatch
from tests.fakedata import write_fake_cifar


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cifar")
    write_fake_cifar(folder, 10, n_train=200, n_test=40)
    return folder


def fake_trainer(rank=0, world=1, num_training_batches=float("inf")):
    """What the data module reads from its Trainer, without launching processes."""
    return SimpleNamespace(global_rank=rank, world_size=world, training=True,
                           num_training_batches=num_training_batches,
                           max_epochs=1, max_steps=-1, limit_train_batches=1.0,
                           strategy=SimpleNamespace(root_device=torch.device("cpu")))


def make(cifar_dir, trainer=None, **options):
    dm = CIFAR10DataModule(data_dir=str(cifar_dir), batch_size=32, val_split=40, download=False, seed=5,
                           **options)
    dm.trainer = trainer or fake_trainer()
    dm.setup("fit")
    return dm


def epoch_batches(dm, epoch):
    loader = dm.train_dataloader()
    loader.sampler.set_epoch(epoch)  # as Lightning does before each epoch
    return [dm.on_after_batch_transfer(batch, 0) for batch in loader]


def test_both_paths_and_any_worker_count_give_identical_batches(cifar_dir):
    reference = make(cifar_dir)
    for options in ({"on_device": True}, {"num_workers": 2}):
        other = make(cifar_dir, **options)
        for epoch in (0, 1):
            for (x, y), (x2, y2) in zip(epoch_batches(reference, epoch), epoch_batches(other, epoch), strict=True):
                assert torch.equal(x, x2) and torch.equal(y, y2), options
    assert len(epoch_batches(reference, 0)) == 160 // 32


def test_training_batches_are_augmented_and_normalized_evaluation_batches_only_normalized(cifar_dir):
    dm = make(cifar_dir)
    raw = next(iter(dm.train_dataloader()))
    assert isinstance(raw, TrainingBatch) and raw.images.dtype == torch.uint8
    assert raw.images.shape == (32, 3, 32, 32)
    mean = torch.tensor(dm.mean).view(1, 3, 1, 1)
    std = torch.tensor(dm.std).view(1, 3, 1, 1)
    x, y = dm.on_after_batch_transfer(raw, 0)
    assert torch.equal(y, raw.labels) and x.dtype == torch.float32
    unaugmented = (raw.images.float() / 255 - mean) / std
    assert not torch.allclose(x, unaugmented)  # crops moved pixels
    padded = (x * std + mean) * 255  # undo the normalization: crop padding shows as exact zeros
    assert (padded.round() == 0).float().mean() > 0.05 and torch.allclose(padded, padded.round(), atol=1e-3)
    no_augment = make(cifar_dir, crop_padding=0, horizontal_flip=False)
    x, _ = no_augment.on_after_batch_transfer(next(iter(no_augment.train_dataloader())), 0)
    torch.testing.assert_close(x, unaugmented)
    images, labels = next(iter(dm.val_dataloader()))
    evaluated, _ = dm.on_after_batch_transfer((images, labels), 0)
    torch.testing.assert_close(evaluated, (images.float() / 255 - mean) / std)


@pytest.mark.parametrize("on_device", [False, True])
def test_each_rank_gets_its_share_with_the_same_augmentation_as_one_device(cifar_dir, on_device):
    single = epoch_batches(make(cifar_dir, on_device=on_device), 1)
    ranks = [epoch_batches(make(cifar_dir, fake_trainer(rank, 2), on_device=on_device), 1) for rank in (0, 1)]
    for position, (x, y) in enumerate(single):
        assert ranks[0][position][0].shape[0] == 16  # batch_size 32 over 2 devices
        assert torch.equal(torch.cat([ranks[0][position][0], ranks[1][position][0]]), x)
        assert torch.equal(torch.cat([ranks[0][position][1], ranks[1][position][1]]), y)
    with pytest.raises(ValueError, match="data.batch_size=32 is not divisible by the 3 devices"):
        make(cifar_dir, fake_trainer(0, 3))  # at setup, before any data is read


@pytest.mark.parametrize("on_device", [False, True])
def test_resume_mid_epoch_continues_with_exactly_the_next_batch(cifar_dir, on_device):
    uninterrupted = make(cifar_dir, on_device=on_device)
    expected = epoch_batches(uninterrupted, 0) + epoch_batches(uninterrupted, 1)
    first = make(cifar_dir, on_device=on_device)
    loader = first.train_dataloader()
    for batch in loader:  # all 5 batches of epoch 0
        first.on_after_batch_transfer(batch, 0)
    loader.sampler.set_epoch(1)
    iterator = iter(loader)
    for _ in range(2):  # 2 of epoch 1, then the "kill"
        first.on_after_batch_transfer(next(iterator), 0)
    state = first.state_dict()
    assert state == {"epoch": 1, "batches_done": 2}
    resumed = make(cifar_dir, on_device=on_device)
    resumed.load_state_dict(state)
    rest = [resumed.on_after_batch_transfer(b, 0) for b in resumed.train_dataloader()]
    assert len(rest) == 3
    for (x, y), (x2, y2) in zip(rest, expected[7:], strict=True):
        assert torch.equal(x, x2) and torch.equal(y, y2)


def test_a_finished_epoch_is_saved_as_the_start_of_the_next(cifar_dir):
    dm = make(cifar_dir, trainer=fake_trainer(num_training_batches=2))  # limit_train_batches=2
    loader = iter(dm.train_dataloader())
    for _ in range(2):
        dm.on_after_batch_transfer(next(loader), 0)
    assert dm.state_dict() == {"epoch": 1, "batches_done": 0}
