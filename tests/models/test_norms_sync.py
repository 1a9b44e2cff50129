"""GlobalBatchNorm2d under a real 2-process gloo world equals BatchNorm2d over the whole batch."""
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from models.norms.sync import GlobalBatchNorm2d, NormlabSyncBatchNorm, convert_to_global_batchnorm


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


def data():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 6, 6, generator=g) * 2 + 3, torch.randn(8, 2, 4, 4, generator=g)


def worker(rank: int, world: int, port: int, out: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    net = convert_to_global_batchnorm(make_net())
    x, target = data()
    shard = slice(rank * 8 // world, (rank + 1) * 8 // world)
    y = net(x[shard])
    # Each rank's loss is the sum over its shard, so the global loss is the sum over ranks.
    ((y - target[shard]) ** 2).sum().backward()
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    dist.all_reduce(grads)  # what DDP does (it averages; the loss above is a sum, so sum here)
    out[rank] = {"y": y.detach(), "grads": grads, "buffers": {k: v.clone() for k, v in net.state_dict().items()}}
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks():
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(worker, args=(2, free_port(), out), nprocs=2, join=True)
        return dict(out)


def test_two_ranks_equal_one_full_batch(two_ranks):
    net = make_net()
    x, target = data()
    y = net(x)
    ((y - target) ** 2).sum().backward()
    torch.testing.assert_close(torch.cat([two_ranks[0]["y"], two_ranks[1]["y"]]), y.detach(), rtol=1e-5, atol=1e-5)
    grads = torch.cat([p.grad.flatten() for p in net.parameters()])
    for rank in (0, 1):
        torch.testing.assert_close(two_ranks[rank]["grads"], grads, rtol=1e-4, atol=1e-5)
        for key, value in net.state_dict().items():  # running mean/var from the global batch
            torch.testing.assert_close(two_ranks[rank]["buffers"][key], value, rtol=1e-5, atol=1e-6)


def test_without_a_process_group_it_is_plain_batchnorm():
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(4)
    converted = convert_to_global_batchnorm(nn.Sequential(nn.BatchNorm2d(4)))[0]
    x = torch.randn(5, 4, 3, 3)
    torch.testing.assert_close(converted(x), plain(x))
    assert isinstance(converted, GlobalBatchNorm2d)


def test_plugin_converts_every_batchnorm_and_reverts():
    from models.norms import make_norm

    net = nn.Sequential(nn.BatchNorm2d(4), make_norm("gn_plus_gn_first", 4, groups=2))
    weight = net[0].weight
    synced = NormlabSyncBatchNorm().apply(net)
    kinds = [type(m) for m in synced.modules() if isinstance(m, nn.BatchNorm2d)]
    assert kinds == [GlobalBatchNorm2d, GlobalBatchNorm2d]  # the GNPlus BN part is reached too
    assert synced[0].weight is weight  # the optimizer keeps updating the same tensors
    reverted = NormlabSyncBatchNorm().revert(synced)
    assert [type(m) for m in reverted.modules() if isinstance(m, (nn.BatchNorm2d, nn.SyncBatchNorm))] == [
        nn.BatchNorm2d, nn.BatchNorm2d]
