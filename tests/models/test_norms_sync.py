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


@pytest.fixture
def one_rank_world(tmp_path, monkeypatch):
    """A real gloo process group of one rank in this process, with GlobalBatchNorm2d told the world is
    distributed: its own statistics path runs (sums, a real all-reduce, the running buffers) in-process,
    where a one-rank all-reduce is the identity and the result must be BatchNorm2d's. (The two-rank test
    above checks the communication; this one reaches every branch of the arithmetic in seconds.)"""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    monkeypatch.setattr("models.norms.sync._distributed", lambda: True)
    yield
    dist.destroy_process_group()


@pytest.mark.parametrize("affine, track, momentum", [(True, True, 0.1), (False, True, None), (True, False, 0.1)])
def test_the_distributed_path_of_one_rank_is_batchnorm(one_rank_world, affine, track, momentum):
    torch.manual_seed(0)
    plain = nn.BatchNorm2d(3, eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track)
    if affine:  # weights away from their (1, 0) start, so a dropped scale or shift shows
        nn.init.uniform_(plain.weight, 0.5, 2.0)
        nn.init.uniform_(plain.bias, -1.0, 1.0)
    synced = convert_to_global_batchnorm(nn.Sequential(plain))[0]
    reference = nn.BatchNorm2d(3, eps=1e-3, momentum=momentum, affine=affine, track_running_stats=track)
    reference.load_state_dict(plain.state_dict())
    for step in range(3):  # three steps: the cumulative average (momentum None) divides by the step count
        x = (torch.randn(4, 3, 5, 6) * torch.tensor([1.0, 3.0, 0.5])[:, None, None]
             + torch.tensor([2.0, -1.0, 0.0])[:, None, None]).requires_grad_()
        x_ref = x.detach().clone().requires_grad_()
        upstream = torch.randn(4, 3, 5, 6)
        y, y_ref = synced(x), reference(x_ref)
        torch.testing.assert_close(y, y_ref, rtol=1e-5, atol=1e-5)
        (y * upstream).sum().backward()
        (y_ref * upstream).sum().backward()
        torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-4, atol=1e-5)
    if affine:
        torch.testing.assert_close(synced.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(synced.bias.grad, reference.bias.grad, rtol=1e-4, atol=1e-5)
    for key, value in reference.state_dict().items():  # running mean, unbiased variance, step count
        torch.testing.assert_close(synced.state_dict()[key], value, rtol=1e-5, atol=1e-6, msg=key)
    synced.eval(), reference.eval()
    x = torch.randn(2, 3, 5, 6)
    torch.testing.assert_close(synced(x), reference(x), rtol=1e-5, atol=1e-5)


def test_two_values_per_channel_keep_torch_s_unbiased_running_variance(one_rank_world):
    """The smallest batch BatchNorm2d takes (2 values per channel): Bessel's n/(n−1) is 2, not clamped."""
    torch.manual_seed(0)
    synced = convert_to_global_batchnorm(nn.Sequential(nn.BatchNorm2d(3)))[0]
    reference = nn.BatchNorm2d(3)
    x = torch.randn(2, 3, 1, 1)
    torch.testing.assert_close(synced(x), reference(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(synced.running_var, reference.running_var, rtol=1e-5, atol=1e-6)
