"""DDP gives the same science as one device: 2 CPU processes (gloo) with per-device batch 8 end with
the weights of 1 process with batch 16 over the same samples, for GN, and for BN-type norms when
their statistics are synced; unsynced BN normalizes each half on its own and ends elsewhere."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # each case launches real processes: ~10-20 s apiece


FAKE_MNIST_SIZES = {"n_train": 160, "n_test": 32}  # the conftest data_dir fixture writes this many images


def fit_command(data_dir, root, norm, devices, sync=False, entry=("lightning_app",)):
    args = [sys.executable, "-m", *entry, "fit", "--config", str(ROOT / "configs/quickstart.yaml"),
            "--data.init_args.data_dir", str(data_dir), "--data.init_args.val_split", "32",
            "--data.init_args.batch_size", "16", "--data.init_args.download", "false",
            "--model.norm", norm, "--model.optimizer", "sgd", "--model.lr", "0.05", "--model.schedule", "constant",
            "--trainer.accelerator", "cpu", "--trainer.devices", str(devices), "--trainer.max_steps", "4",
            "--trainer.limit_val_batches", "0", "--test_after_fit", "false", "--trainer.default_root_dir", str(root),
            "--trainer.enable_progress_bar", "false", "--trainer.deterministic", "true"]
    if devices > 1:
        args += ["--config", str(ROOT / "configs/presets/ddp.yaml"), "--trainer.sync_batchnorm", str(sync).lower()]
    return args


def run(args, succeeds=True):
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert (result.returncode == 0) == succeeds, result.stderr[-3000:]
    return result


def final_weights(data_dir, root, norm, devices, sync=False):
    run(fit_command(data_dir, root, norm, devices, sync))
    return saved_weights(root)


def saved_weights(root):
    (ckpt,) = Path(root).glob("*/*/checkpoints/last.ckpt")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    return {k: v for k, v in state.items() if v.is_floating_point()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.parametrize("norm,sync", [("gn", False), ("bn", True), ("gn_plus_gn_first", True)])
def test_two_processes_equal_one_with_the_global_batch(data_dir, tmp_path, norm, sync):
    single = final_weights(data_dir, tmp_path / "one", norm, devices=1)
    assert_same(final_weights(data_dir, tmp_path / "two", norm, devices=2, sync=sync), single)


def test_unsynced_bn_sees_each_half_on_its_own(data_dir, tmp_path):
    single = final_weights(data_dir, tmp_path / "one", "bn", devices=1)
    unsynced = final_weights(data_dir, tmp_path / "two", "bn", devices=2, sync=False)
    differs = [k for k in single if not torch.allclose(single[k], unsynced[k], rtol=1e-4, atol=1e-5)]
    assert any("running_mean" in k for k in differs) and any(k.endswith("weight") for k in differs)


def test_ddp_run_killed_mid_epoch_resumes_to_the_uninterrupted_weights(data_dir, tmp_path):
    """SIGKILL both ranks after step 3 of 4 (mid-epoch), relaunch the same command: same run directory,
    same final weights as a 2-process run that was never interrupted."""
    uninterrupted = final_weights(data_dir, tmp_path / "straight", "gn_plus_gn_first", devices=2, sync=True)
    command = fit_command(data_dir, tmp_path / "killed", "gn_plus_gn_first", devices=2, sync=True)
    command += ["--checkpoint_every_n_steps", "1"]
    killer = command[:2] + ["tests.lightning_app.kill_during_fit", "after_step", "3"] + command[3:]
    # Both ranks SIGKILL themselves after step 3's checkpoint; whichever dies first, the launcher fails
    # (killed, or its peer's death breaks a collective).
    run(killer, succeeds=False)
    (run_dir,) = [p for p in (tmp_path / "killed").glob("*/*") if p.is_dir()]
    assert torch.load(run_dir / "checkpoints/last.ckpt", weights_only=False)["global_step"] == 3
    assert "resuming the interrupted run" in run(command).stderr
    assert [p for p in (tmp_path / "killed").glob("*/*") if p.is_dir()] == [run_dir]
    assert_same(saved_weights(tmp_path / "killed"), uninterrupted)
