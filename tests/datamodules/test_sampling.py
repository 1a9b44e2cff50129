"""The training batch order (datamodules/sampling.py): a pure function of (seed, epoch), disjoint
per-rank shares of each global batch under DDP, drop_last, resuming, and Lightning's DDP handling."""
import pytest
import torch
from pytorch_lightning import Trainer
from torch.utils.data import DataLoader

from callbacks.compat import prepared_training_dataloader
from datamodules.sampling import EpochBatchSampler, epoch_order, per_device_batch_size


def batches(sampler):
    return [(key.epoch, key.position, key.indices.tolist()) for key in sampler]


def test_order_is_a_pure_function_of_seed_and_epoch():
    a = EpochBatchSampler(100, 10, seed=3)
    b = EpochBatchSampler(100, 10, seed=3)
    for epoch in (0, 5):
        a.set_epoch(epoch), b.set_epoch(epoch)
        assert batches(a) == batches(b)
    a.set_epoch(1)
    b.set_epoch(2)
    assert batches(a) != batches(b)
    assert sorted(sum((k[2] for k in batches(a)), [])) == list(range(100))  # a permutation
    assert not torch.equal(epoch_order(100, 3, 1), epoch_order(100, 4, 1))
    assert torch.equal(epoch_order(7, 3, 1, shuffle=False), torch.arange(7))


@pytest.mark.parametrize("drop_last,sizes", [(True, [32, 32, 32]), (False, [32, 32, 32, 4])])
def test_drop_last(drop_last, sizes):
    sampler = EpochBatchSampler(100, 32, seed=0, drop_last=drop_last)
    assert [len(k[2]) for k in batches(sampler)] == sizes and len(sampler) == len(sizes)


@pytest.mark.parametrize("world", [2, 4])
def test_ranks_take_disjoint_shares_of_every_global_batch(world):
    single = batches(EpochBatchSampler(96, 16, seed=1))
    shares = [batches(EpochBatchSampler(96, 16, seed=1, rank=r, world_size=world)) for r in range(world)]
    assert all(len(s) == len(single) for s in shares)
    for position, (_, _, global_batch) in enumerate(single):
        parts = [shares[r][position][2] for r in range(world)]
        assert all(len(p) == 16 // world for p in parts)
        assert sum(parts, []) == global_batch  # rank r holds slice r: disjoint, and together the batch


def test_indivisible_batch_is_a_clear_error():
    assert per_device_batch_size(128, 4) == 32
    with pytest.raises(ValueError, match="batch_size=30 is not divisible by the 4 devices; use a multiple of 4"):
        EpochBatchSampler(100, 30, seed=0, world_size=4)


def test_last_batch_smaller_than_the_world_is_refused_without_drop_last():
    with pytest.raises(ValueError, match="fewer than the 4 devices; set data.drop_last: true"):
        EpochBatchSampler(66, 16, seed=0, drop_last=False, world_size=4)  # 66 = 4·16 + 2


def test_start_at_skips_the_done_batches_of_that_epoch_only():
    full = EpochBatchSampler(100, 10, seed=0)
    full.set_epoch(2)
    expected = batches(full)
    resumed = EpochBatchSampler(100, 10, seed=0)
    resumed.start_at(2, 4)
    assert batches(resumed) == expected[4:]
    resumed.set_epoch(2)  # Lightning repeats the epoch number: the skip stays
    assert batches(resumed) == expected[4:]
    resumed.set_epoch(3)
    assert len(batches(resumed)) == 10


def test_lightning_does_not_inject_its_sampler_under_ddp():
    """Lightning's own DDP preparation (no processes launched) leaves our loader untouched."""
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False)
    ours = DataLoader(range(64), batch_size=None, sampler=EpochBatchSampler(64, 8, seed=0, rank=1, world_size=2))
    assert prepared_training_dataloader(trainer, ours) is ours
    plain = DataLoader(range(64), batch_size=8)  # the control: a plain loader does get one
    assert prepared_training_dataloader(trainer, plain) is not plain
