"""The sync-BN plugin's decisions, in-process: when a world counts as distributed, which converter a model
gets (torch's SyncBatchNorm on CUDA, GlobalBatchNorm2d elsewhere), and that converting and reverting
give back BatchNorm2d layers with every option they had (ε, momentum, running statistics or none)."""
import pytest
import torch
import torch.distributed as dist
from torch import nn

from models.norms.sync import (GlobalBatchNorm2d, NormlabSyncBatchNorm, _distributed,
                               convert_to_global_batchnorm)


@pytest.fixture
def one_rank_world(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def test_a_world_of_one_rank_is_not_distributed_and_of_two_is(one_rank_world, monkeypatch):
    assert not _distributed()  # nothing to synchronize: plain BatchNorm2d
    monkeypatch.setattr(dist, "get_world_size", lambda *args, **kwargs: 2)
    assert _distributed()


@pytest.mark.parametrize("options", [
    {"eps": 1e-3, "momentum": 0.3},
    {"eps": 1e-4, "momentum": None},
    {"eps": 1e-3, "momentum": 0.2, "affine": False, "track_running_stats": False},
])
def test_convert_and_revert_keep_every_option(options):
    original = nn.BatchNorm2d(4, **options)
    reference_repr = repr(original)
    converted = convert_to_global_batchnorm(nn.Sequential(original))
    assert type(converted[0]) is GlobalBatchNorm2d
    assert repr(converted[0]).replace("GlobalBatchNorm2d", "BatchNorm2d") == reference_repr
    reverted = NormlabSyncBatchNorm().revert(converted)
    assert type(reverted[0]) is nn.BatchNorm2d and repr(reverted[0]) == reference_repr


class _CudaLookingParameter(nn.Parameter):
    """A CPU parameter that reports `is_cuda` (torch's converter itself never looks at the device)."""

    @property
    def is_cuda(self):
        return True


def test_a_model_on_cuda_gets_torchs_sync_batchnorm():
    model = nn.Sequential(nn.BatchNorm2d(4))
    model[0].weight = _CudaLookingParameter(model[0].weight.detach())
    synced = NormlabSyncBatchNorm().apply(model)
    assert type(synced[0]) is nn.SyncBatchNorm
    cpu = NormlabSyncBatchNorm().apply(nn.Sequential(nn.BatchNorm2d(4)))
    assert type(cpu[0]) is GlobalBatchNorm2d
