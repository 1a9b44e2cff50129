"""A checkpoint is data, never code: every way `lightning` reads one (its own check, `--ckpt_path` of
fit/validate/test, the relaunch of an interrupted run, a SLURM requeue checkpoint, and Lightning's own
loads through the Trainer's CheckpointIO) unpickles with `weights_only=True`. A real malicious pickle
(its unpickling calls `os.system("touch MARKER")`) must create no file on any path. A checkpoint whose
weights hold a NaN after 8 bytes of it were overwritten is refused when resuming, naming the tensor.
"""
import json
import shutil

import pytest
import torch

from lightning_app.checkpoints import AtomicCheckpointIO, load_checkpoint_file
from lightning_app.cli import NormlabCLI
from lightning_app.command import main
from tests.helpers import error_line, snapshot, tiny_args
from tests.lightning_app.hostile_files import overwrite_tensor_bytes, write_malicious_checkpoint


def fit_args(data, root, *extra):
    return tiny_args(data, root, "--experiment", "exp", "--run_name", "victim", "--trainer.max_epochs", "1",
                     "--test_after_fit", "false", *extra)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, data_dir):
    """(base, root): `victim`, an interrupted run (summary says running, last.ckpt exists), as a kill leaves it."""
    base = tmp_path_factory.mktemp("hostile_checkpoints")
    root = base / "runs"
    main(fit_args(data_dir, root))
    victim = root / "exp" / "victim"
    summary = json.loads((victim / "summary.json").read_text())
    (victim / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
    return base, root


def copy_of(interrupted, tmp_path):
    base, root = interrupted
    shutil.copytree(root, tmp_path / "runs")
    return tmp_path / "runs", tmp_path / "runs" / "exp" / "victim"


@pytest.mark.parametrize("how", ["fit --ckpt_path", "test --ckpt_path", "validate --ckpt_path",
                                 "relaunch, last.ckpt replaced", "relaunch, a SLURM requeue checkpoint planted"])
def test_a_checkpoint_whose_pickle_calls_os_system_runs_nothing(interrupted, data_dir, tmp_path, capsys, how):
    root, victim = copy_of(interrupted, tmp_path)
    marker = tmp_path / "PWNED"
    last = victim / "checkpoints" / "last.ckpt"
    args = fit_args(data_dir, root)
    if how.startswith("relaunch"):
        target = last if "last.ckpt" in how else victim / "hpc_ckpt_7.ckpt"
        write_malicious_checkpoint(target, marker, like=last)
    else:
        subcommand, extra = how.split()[0], ["--ckpt_path", str(write_malicious_checkpoint(
            tmp_path / "shared.ckpt", marker, like=last))]
        args = [subcommand, *args[1:], *extra]
    before = snapshot(root)
    message = error_line(capsys, lambda: main(args))
    assert not marker.exists()
    assert "holds posix.system, which no normlab checkpoint holds" in message and "refusing to load it" in message
    assert snapshot(root) == before


def test_lightnings_own_loads_go_through_the_weights_only_loader(interrupted, data_dir, tmp_path):
    """The Trainer the CLI builds loads `ckpt_path`, a resume and a SLURM requeue checkpoint through its
    strategy's CheckpointIO: that is normlab's, so a checkpoint swapped after normlab's own check (or a
    Trainer call that skips it) still runs no code."""
    root, victim = copy_of(interrupted, tmp_path)
    marker = tmp_path / "PWNED"
    evil = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker, like=victim / "checkpoints" / "last.ckpt")
    cli = NormlabCLI(args=fit_args(data_dir, root)[1:], run=False)  # builds model, data and Trainer only
    assert isinstance(cli.trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    with pytest.raises(ValueError, match="holds posix.system"):
        cli.trainer.test(cli.model, datamodule=cli.datamodule, ckpt_path=str(evil))
    with pytest.raises(ValueError, match="holds posix.system"):
        AtomicCheckpointIO().load_checkpoint(evil)
    assert not marker.exists()


def test_a_resume_refuses_a_checkpoint_with_a_nan_weight_naming_the_tensor(interrupted, data_dir, tmp_path, capsys):
    root, victim = copy_of(interrupted, tmp_path)
    last = victim / "checkpoints" / "last.ckpt"
    overwrite_tensor_bytes(last, "net.features.4.weight")
    before = snapshot(root)
    message = error_line(capsys, lambda: main(fit_args(data_dir, root)))
    assert message.startswith(f"checkpoint {last} holds non-finite values in net.features.4.weight (2 of ")
    assert snapshot(root) == before


def test_a_nan_buffer_is_refused_too(interrupted, tmp_path):
    root, victim = copy_of(interrupted, tmp_path)
    last = victim / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    buffer = next(k for k in checkpoint["state_dict"] if k.endswith("running_var"))
    checkpoint["state_dict"][buffer][0] = float("inf")
    torch.save(checkpoint, last)
    from lightning_app.checkpoints import check_finite

    with pytest.raises(ValueError, match=f"holds non-finite values in {buffer} \\(1 of "):
        check_finite(load_checkpoint_file(last), last)


def test_every_checkpoint_a_run_writes_loads_weights_only(data_dir, tmp_path):
    """A checkpoint needs no type beyond torch's weights-only set, so normlab allow-lists none. Every
    callback with state (explosion events, λ history, landscape, Hessian, best-checkpoint tracking,
    RNG states, run summary), a LR schedule and the data module's position: what a checkpoint holds."""
    presets = [a for p in ("landscape", "lambda", "explosion") for a in ("--config", f"configs/presets/{p}.yaml")]
    main(tiny_args(data_dir, tmp_path, *presets, "--model.norm", "gn_plus_parallel", "--model.lr", "1e3",
                   "--explosion.action", "skip_step", "--explosion.spike_action", "skip_step",
                   "--landscape.every_n_steps", "2", "--hessian", "callbacks.hessian.HessianTopEigen",
                   "--hessian.every_n_steps", "3", "--hessian.iterations", "2", "--save_best", "true",
                   "--lambda_tracker.log_raw", "true", "--model.schedule", "multistep", "--model.milestones", "[1]",
                   "--checkpoint_every_n_steps", "2", "--test_after_fit", "false"))
    checkpoints = sorted(tmp_path.rglob("*.ckpt"))
    assert {p.name for p in checkpoints} == {"last.ckpt", "best.ckpt"}
    for path in checkpoints:
        assert torch.serialization.get_unsafe_globals_in_checkpoint(path) == [], path
        checkpoint = load_checkpoint_file(path)
        assert checkpoint["callbacks"] and checkpoint["lr_schedulers"]
