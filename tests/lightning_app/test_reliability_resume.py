"""A run killed with SIGKILL and relaunched ends bit for bit where an uninterrupted run ends.

Reference: one uninterrupted `lightning fit` (in process). Faulty: the same command as a real
subprocess that SIGKILLs itself (`kill_during_fit.py`) mid-epoch, or halfway through writing a
checkpoint; then the same command again, which resumes from the run directory's `last.ckpt`.
Compared: every tensor of the final checkpoint (weights, BN buffers, λ), the optimizer and LR
scheduler state, and every row of `metrics.csv` (rows logged before the kill must survive; rows of
the resumed part must equal the reference's). `train/acc` is left out: torchmetrics accumulators are
not checkpointed, so the resumed epoch's train accuracy counts only the batches after the resume.
"""
import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from lightning_app.command import main
from tests.helpers import ROOT, run_dirs, tiny_args

# 192 training images / batch 32 = 6 steps per epoch, 2 epochs; last.ckpt every 2 steps and at epoch ends.
STEPS_PER_EPOCH, EPOCHS = 6, 2
def newest_checkpoint_after(step: int) -> int:
    """The step of the newest last.ckpt once step `step` has run: every 2nd step except an epoch's last
    batch (LastCheckpoint), and every epoch end (written after the epoch's last step, so only for
    epochs before `step`'s); 0 for none."""
    saved = [k for k in range(1, step + 1) if k % 2 == 0 and k % STEPS_PER_EPOCH]
    return max(saved + list(range(STEPS_PER_EPOCH, step, STEPS_PER_EPOCH)), default=0)


def run_args(data_dir, root, *extra):
    # Every step logged and σ(λ) every 2nd: a row at the checkpoint's step exists for each key, so a row lost
    # at the resume boundary (once the λ row of the checkpoint's step) shows in the comparison.
    return tiny_args(data_dir, root, "--data", "datamodules.MNISTDataModule", "--model.norm", "gn_plus_gn_first",
                     "--trainer.max_epochs", str(EPOCHS), "--trainer.deterministic", "true",
                     "--trainer.log_every_n_steps", "1", "--lambda_tracker.init_args.every_n_steps", "2",
                     "--checkpoint_every_n_steps", "2", "--test_after_fit", "false", *extra)


def final_state(root):
    (run_dir,) = run_dirs(root)
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    with open(run_dir / "metrics.csv", newline="") as f:
        cells = {(row["step"], key, value) for row in csv.DictReader(f) for key, value in row.items()
                 if value not in ("", None) and key not in ("step", "train/acc")}
    return run_dir, checkpoint, cells


def assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def kill_then_resume(data_dir, root, mode, step):
    """The faulty run: a subprocess killed at `step`, then the same command in process."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-m", "tests.lightning_app.kill_during_fit", mode, str(step),
                             *run_args(data_dir, root)], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]  # it really died by SIGKILL
    (run_dir,) = run_dirs(root)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"  # no handler ran
    last = run_dir / "checkpoints" / "last.ckpt"
    left = torch.load(last, map_location="cpu", weights_only=False) if last.exists() else None
    main(run_args(data_dir, root))  # the relaunch: resumes from last.ckpt by itself (or starts over without one)
    return left


@pytest.fixture(scope="module")
def reference(data_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    main(run_args(data_dir, root))
    return final_state(root)


def test_sigkill_mid_epoch_then_resume_is_bit_identical(data_dir, reference, tmp_path, capsys):
    left = kill_then_resume(data_dir, tmp_path, "after_step", 9)
    assert left["global_step"] == newest_checkpoint_after(9) == 8  # mid-epoch: epoch 1, batch 2 of 6
    assert "resuming the interrupted run" in capsys.readouterr().err
    ref_dir, ref_ckpt, ref_cells = reference
    run_dir, ckpt, cells = final_state(tmp_path)
    assert ckpt["global_step"] == ref_ckpt["global_step"] == STEPS_PER_EPOCH * EPOCHS
    assert_same_tensors(ckpt["state_dict"], ref_ckpt["state_dict"], "state_dict")
    assert_same_tensors(ckpt["optimizer_states"], ref_ckpt["optimizer_states"], "optimizer")
    assert_same_tensors(ckpt["lr_schedulers"], ref_ckpt["lr_schedulers"], "scheduler")
    assert cells == ref_cells
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == STEPS_PER_EPOCH * EPOCHS
    assert yaml_ckpt_path(run_dir) is None  # the auto-resume is not baked into config.yaml


def yaml_ckpt_path(run_dir):
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text()).get("ckpt_path")


@pytest.mark.slow
@pytest.mark.parametrize("mode,step", [
    ("after_step", 1),  # before the first checkpoint: the relaunch starts over
    ("after_step", 6), ("after_step", 7), ("after_step", 11), ("mid_write", 8), ("mid_write", 6),
])
def test_sigkill_anywhere_then_resume_is_bit_identical(data_dir, reference, tmp_path, mode, step):
    left = kill_then_resume(data_dir, tmp_path, mode, step)
    # The checkpoint left behind: none before step 2; a half-written one never replaced the previous one.
    expected = newest_checkpoint_after(step if mode == "after_step" else step - 1)
    assert (left["global_step"] if left else 0) == expected
    _, ref_ckpt, ref_cells = reference
    run_dir, ckpt, cells = final_state(tmp_path)
    assert_same_tensors(ckpt["state_dict"], ref_ckpt["state_dict"], "state_dict")
    assert_same_tensors(ckpt["optimizer_states"], ref_ckpt["optimizer_states"], "optimizer")
    assert cells == ref_cells


@pytest.mark.slow  # test_reliability_files.py checks the same write in process, in the quick tier
def test_kill_mid_write_leaves_the_previous_checkpoint_whole(data_dir, tmp_path):
    """Atomic writes: SIGKILL with half of step 4's checkpoint on disk; last.ckpt is still step 2's."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT)}
    killed = subprocess.run([sys.executable, "-m", "tests.lightning_app.kill_during_fit", "mid_write", "4",
                             *run_args(data_dir, tmp_path)], capture_output=True, text=True, cwd=ROOT, env=env,
                            timeout=300)
    assert killed.returncode == -9, killed.stderr[-2000:]
    (run_dir,) = run_dirs(tmp_path)
    checkpoints = run_dir / "checkpoints"
    assert torch.load(checkpoints / "last.ckpt", map_location="cpu", weights_only=False)["global_step"] == 2
    (partial,) = checkpoints.glob(".last.ckpt.*.tmp")  # the half-written file went to a temporary name
    with pytest.raises(Exception):
        torch.load(partial, map_location="cpu", weights_only=False)
    with open(run_dir / "metrics.csv", newline="") as f:  # rows logged before the kill are on disk
        steps = {int(row["step"]) for row in csv.DictReader(f) if row.get("train/loss")}
    # log_every_n_steps=1: the rows of steps 1-3 (0-based 0-2) were written at once; step 4's row comes
    # after its checkpoint, which the kill interrupted.
    assert steps == {0, 1, 2}
