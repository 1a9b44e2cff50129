"""SLURM's requeue signal arriving in the middle of a training step (here: just before the optimizer
step of step 4) must still leave a checkpoint that resumes to the uninterrupted step count.

The run sees a SLURM job's environment (one task) and a stand-in `scontrol` that records the requeue
instead of ending the job, so the same process trains on to the end. Its `hpc_ckpt_1.ckpt` is then
resumed in a fresh run directory: 12 steps in all, as without the signal. Lightning's own handler,
which saves inside the signal handler, saves here at global_step 3 with step 4 half done (checked by
taking the callback out); on the test cluster such a checkpoint resumed to 179 of 180 steps.
"""
import json
import os
import shutil
import signal
from types import SimpleNamespace

import torch
from pytorch_lightning import Callback

from callbacks.slurm_requeue import SlurmRequeueAtBatchEnd
from lightning_app.command import main
from tests.helpers import run_dirs, tiny_args

STEPS = 12  # 2 epochs of 6 steps (tiny_args)
SLURM_JOB = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "normlab-test",
             "SLURM_JOB_ID": "7", "SLURM_NODELIST": "localhost", "SLURM_PROCID": "0", "SLURM_LOCALID": "0",
             "SLURM_NODEID": "0"}


class SignalsMidStep(Callback):
    """Sends this process SLURM's requeue signal inside step 4, before its optimizer step."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        if trainer.global_step == 3:
            os.kill(os.getpid(), signal.SIGUSR1)


def test_a_requeue_signal_mid_step_checkpoints_a_whole_step(fake_mnist_dir, tmp_path, monkeypatch):
    calls = tmp_path / "scontrol_calls"
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "scontrol").write_text(f'#!/bin/bash\necho "$@" >> {calls}\n')
    (fake_bin / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    for name, value in SLURM_JOB.items():
        monkeypatch.setenv(name, value)
    previous_handler = signal.getsignal(signal.SIGUSR1)
    # the signalling callback is part of the command (a callback classified nowhere is part of the run's identity,
    # lightning_app/run/science.py): the relaunch repeats it, and resumed past step 3 it sends nothing
    command = ["--model.norm", "gn", "--test_after_fit", "false",
               "--trainer.callbacks+", "tests.callbacks.test_slurm_requeue.SignalsMidStep"]
    main(tiny_args(fake_mnist_dir, tmp_path / "signalled", *command))
    assert signal.getsignal(signal.SIGUSR1) == previous_handler  # restored after the run
    assert calls.read_text().split() == ["requeue", "7"]
    (signalled,) = run_dirs(tmp_path / "signalled")
    saved = torch.load(signalled / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=False)
    assert saved["global_step"] == 4  # saved after step 4, not inside it

    for name in SLURM_JOB:
        monkeypatch.delenv(name)
    resumed_root = tmp_path / "resumed" / signalled.parent.name / signalled.name
    resumed_root.mkdir(parents=True)
    shutil.copy(signalled / "hpc_ckpt_1.ckpt", resumed_root)  # the relaunch picks it up, as after a requeue
    main(tiny_args(fake_mnist_dir, tmp_path / "resumed", *command))
    summary = json.loads((resumed_root / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == STEPS


def test_a_signal_noted_before_validation_ends_requeues_there_but_not_after_the_sanity_check(monkeypatch):
    requeued = []
    monkeypatch.setattr("callbacks.slurm_requeue.slurm_requeue_handler",
                        lambda trainer: lambda signum, frame: requeued.append((trainer, signum)))
    callback = SlurmRequeueAtBatchEnd()
    callback._signum = signal.SIGUSR1  # as setup sets it under SLURM auto-requeue
    callback._note(signal.SIGUSR1, None)
    trainer = SimpleNamespace(sanity_checking=True, world_size=1)
    callback.on_validation_end(trainer, None)
    assert requeued == []  # the sanity check runs before the first step: nothing to save yet
    trainer.sanity_checking = False
    callback.on_validation_end(trainer, None)
    callback.on_validation_end(trainer, None)
    assert requeued == [(trainer, signal.SIGUSR1)]  # once: SLURM ends the job after the requeue


def test_teardown_puts_the_previous_handler_back_once_and_a_later_stage_leaves_it():
    """fit then test with the same callbacks: the fit's teardown restores the handler, the test's does nothing."""
    previous = signal.getsignal(signal.SIGUSR1)
    callback = SlurmRequeueAtBatchEnd()
    callback._signum, callback._previous = signal.SIGUSR1, previous  # as setup leaves them under SLURM
    signal.signal(signal.SIGUSR1, callback._note)
    try:
        callback.teardown(None, None, "fit")
        assert signal.getsignal(signal.SIGUSR1) is previous
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
        callback.teardown(None, None, "test")
        assert signal.getsignal(signal.SIGUSR1) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGUSR1, previous)
