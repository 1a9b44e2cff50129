"""`lightning fit` end to end on generated IDX data, in process and as a real subprocess."""
import json
import os
import subprocess
import sys

import pytest
import yaml

from lightning_app.command import main
from tests.helpers import ROOT, run_dirs, tiny_args

def test_fit_writes_the_run_directory(fake_mnist_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    main(tiny_args(fake_mnist_dir, root, "--model.norm", "gn"))
    (run_dir,) = run_dirs(root)
    assert run_dir.parent.name == "quickstart"  # experiment = the first config file's name
    assert run_dir.name.startswith("fashion_mnist_small_cnn_gn_g4_bs32_lr0.003_s0_")
    for name in ("config.yaml", "metrics.csv", "checkpoints/last.ckpt", "summary.json"):
        assert (run_dir / name).is_file(), name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs"] == 2 and summary["steps"] == 12
    for key in ("best_val_acc", "final_val_acc", "test_acc"):
        assert 0.0 <= summary[key] <= 1.0
    assert summary["best_val_acc"] >= summary["final_val_acc"] and summary["wall_seconds"] > 0
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["model"]["norm"] == "gn" and config["run_name"] == run_dir.name
    assert config["experiment"] == "quickstart"
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"train/loss", "train/acc", "val/loss", "val/acc", "test/acc", "test/loss"} <= set(header)
    assert f"run dir: {run_dir}" in capsys.readouterr().out


def test_linked_data_values_reach_the_model(fake_mnist_dir, tmp_path):
    from lightning_app.cli import NormlabCLI

    cli = NormlabCLI(args=tiny_args(fake_mnist_dir, tmp_path)[1:], run=False)
    assert (cli.model.hparams.num_classes, cli.model.hparams.in_channels, cli.model.hparams.image_size) == (10, 1, 28)


def test_completed_run_is_not_overwritten(fake_mnist_dir, tmp_path):
    args = tiny_args(fake_mnist_dir, tmp_path, "--trainer.max_epochs", "1")
    main(args)
    (run_dir,) = run_dirs(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 2
    assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*") if p.is_file()} == before
    main(args + ["--overwrite", "true"])
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "completed"


@pytest.mark.parametrize("override,expected", [
    (["--model.norm", "batchnorm"], "unknown norm 'batchnorm'; allowed: none, bn, gn"),
    (["--data.init_args.batch_size", "-8"], "data.batch_size must be an integer >= 1, got -8"),
    (["--model.lr", "0"], "model.lr must be a finite number > 0, got 0"),
])
def test_bad_values_fail_with_one_clear_line(fake_mnist_dir, tmp_path, override, expected):
    env = {**os.environ, "WANDB_MODE": "offline", "NORMLAB_DEBUG": ""}
    result = subprocess.run([sys.executable, "-m", "lightning_app", *tiny_args(fake_mnist_dir, tmp_path), *override],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("normlab: error:")]
    assert len(errors) == 1 and expected in errors[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert not run_dirs(tmp_path)  # nothing written


def test_relaunch_prefers_a_newer_slurm_requeue_checkpoint(fake_mnist_dir, tmp_path, capsys):
    """A SLURM requeue leaves hpc_ckpt_N.ckpt (saved on SIGUSR1) beside an older last.ckpt."""
    import shutil

    args = tiny_args(fake_mnist_dir, tmp_path, "--trainer.max_epochs", "1")
    main(args)
    (run_dir,) = run_dirs(tmp_path)

    def relaunch_as_if_killed() -> str:
        summary = json.loads((run_dir / "summary.json").read_text())
        (run_dir / "summary.json").write_text(json.dumps({**summary, "status": "running"}))
        capsys.readouterr()
        main(args)
        return capsys.readouterr().err

    shutil.copy(run_dir / "checkpoints/last.ckpt", run_dir / "hpc_ckpt_1.ckpt")
    assert f"from {run_dir / 'hpc_ckpt_1.ckpt'}" in relaunch_as_if_killed()
    os.utime(run_dir / "checkpoints/last.ckpt", ns=(2**62, 2**62))  # now last.ckpt is the newer one
    assert f"from {run_dir / 'checkpoints/last.ckpt'}" in relaunch_as_if_killed()


def test_a_few_dozen_steps_on_real_fashion_mnist_beat_chance_clearly(tmp_path, system_fashion_mnist):
    """The one end-to-end check that the pipeline learns: 40 steps of batch 128 (5,120 of the 60,000
    training images), then 2,560 test images. Chance is 0.1 for 10 classes."""
    main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"), "--data.init_args.data_dir", str(system_fashion_mnist),
          "--data.init_args.download", "false", "--data.init_args.val_split", "1000", "--trainer.max_epochs", "1",
          "--trainer.limit_train_batches", "40", "--trainer.limit_val_batches", "2", "--trainer.limit_test_batches",
          "10", "--data.init_args.eval_batch_size", "256", "--trainer.default_root_dir", str(tmp_path),
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"])
    (run_dir,) = run_dirs(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 40 and summary["test_acc"] > 0.5, summary
