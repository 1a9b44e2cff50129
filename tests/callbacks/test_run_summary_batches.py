"""`batch_sizes` records each device's share with the data module's own rule, divisibility check included."""
from types import SimpleNamespace

import pytest

from callbacks.run_summary import batch_sizes


def fake_trainer(batch_size: int, world_size: int, synced: bool = False) -> SimpleNamespace:
    strategy = SimpleNamespace(_layer_sync=object() if synced else None)
    return SimpleNamespace(datamodule=SimpleNamespace(batch_size=batch_size), world_size=world_size, strategy=strategy)


def test_share_and_normalization_batch():
    assert batch_sizes(fake_trainer(128, 4)) == {"global_batch_size": 128, "per_device_batch_size": 32,
                                                 "norm_batch_size": 32, "world_size": 4}
    assert batch_sizes(fake_trainer(128, 4, synced=True))["norm_batch_size"] == 128


def test_batch_the_devices_do_not_divide_is_refused():
    with pytest.raises(ValueError, match="not divisible by the 3 devices"):
        batch_sizes(fake_trainer(128, 3))
