"""`lightning sweep` on real tiny runs (generated IDX data), each a real `python -m lightning_app fit`
subprocess: the planned run directories are the ones the trainings write; finished runs are skipped;
Ctrl-C stops the sweep, and the same command resumes the interrupted run from its last checkpoint."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lightning_app.sweep.command import main
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.helpers import ROOT, ends_within


def tiny_sweep(tmp_path, data_dir, grid: str, max_epochs: int = 1) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(f"""config: configs/quickstart.yaml
args:
  trainer.default_root_dir: {tmp_path / 'runs'}
  trainer.max_epochs: {max_epochs}
  trainer.enable_progress_bar: false
  trainer.enable_model_summary: false
  trainer.log_every_n_steps: 2
  data.init_args.data_dir: {data_dir}
  data.init_args.download: false
  data.init_args.val_split: 64
  data.init_args.batch_size: 32
grid:
{grid}""")
    return path


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_sweep_runs_the_planned_directories_then_skips_them(fake_mnist_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    sweep = tiny_sweep(tmp_path, fake_mnist_dir, "  model.norm: [bn, gn]\n")
    planned = [run.run_dir for run in plan_sweep(load_sweep(sweep))]
    with pytest.raises(SystemExit) as info:
        main(["--config", str(sweep)])
    assert info.value.code == 0
    written = sorted(p for p in (tmp_path / "runs" / "tiny").iterdir() if p.name != "_sweep")
    assert written == sorted(planned)  # the trainings wrote exactly the planned directories
    assert [summary(d)["status"] for d in planned] == ["completed", "completed"]
    assert [summary(d)["epochs"] for d in planned] == [1, 1]
    mtimes = {p: p.stat().st_mtime_ns for d in planned for p in d.rglob("*")}
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        main(["--config", str(sweep)])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "(2 finished, 0 to resume, 0 to start)" in out and "sweep: all 2 runs finished" in out
    assert {p: p.stat().st_mtime_ns for d in planned for p in d.rglob("*")} == mtimes  # nothing touched


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl_c", "sigterm"])
def test_ctrl_c_stops_the_sweep_and_the_same_command_resumes(stop, fake_mnist_dir, tmp_path):
    epochs = 40
    sweep = tiny_sweep(tmp_path, fake_mnist_dir, "  model.norm: [gn, bn]\n", max_epochs=epochs)
    first, second = (run.run_dir for run in plan_sweep(load_sweep(sweep)))
    command = [sys.executable, "-m", "lightning_app", "sweep", "--config", str(sweep)]
    env = {**os.environ, "WANDB_MODE": "offline"}
    log = tmp_path / "sweep.log"  # a file, not a pipe: nobody reads a pipe while the test waits
    sweep_process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    last = first / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.is_file() and time.monotonic() < deadline and sweep_process.poll() is None:
        time.sleep(0.05)
    assert last.is_file(), "the first run never wrote a checkpoint"
    sweep_process.send_signal(stop)
    sweep_process.wait(timeout=240)
    out = log.read_text()
    assert sweep_process.returncode == 130, out[-3000:]
    assert "interrupted; 1 run(s) stopped, 1 not started" in out
    stopped = summary(first)
    assert stopped["status"] == "interrupted" and stopped["epochs"] < epochs and last.is_file()
    assert not second.exists()

    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "(0 finished, 1 to resume, 1 to start)" in result.stdout
    assert f"resuming the interrupted run in {first}" in result.stderr
    finished = summary(first)
    assert finished["status"] == "completed" and finished["epochs"] == epochs
    assert finished["steps"] == epochs * (256 - 64) // 32  # the step count continued from the checkpoint
    assert summary(second)["status"] == "completed"


@pytest.mark.slow
def test_a_killed_sweep_leaves_no_training_behind_and_the_same_command_resumes(fake_mnist_dir, tmp_path):
    """SIGKILL gives the sweep no chance to stop its training; the kernel's parent-death signal does."""

    epochs = 40
    sweep = tiny_sweep(tmp_path, fake_mnist_dir, "  model.norm: [gn]\n", max_epochs=epochs)
    (run,) = plan_sweep(load_sweep(sweep))
    command = [sys.executable, "-m", "lightning_app", "sweep", "--config", str(sweep)]
    log = tmp_path / "sweep.log"
    sweep_process = subprocess.Popen(command, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT)
    last = run.run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while not last.is_file() and time.monotonic() < deadline and sweep_process.poll() is None:
        time.sleep(0.05)
    assert last.is_file(), log.read_text()[-3000:]
    (training,) = (int(pid) for pid in Path(f"/proc/{sweep_process.pid}/task/{sweep_process.pid}/children")
                   .read_text().split())
    sweep_process.kill()
    sweep_process.wait()
    assert ends_within(training, 60), "the training outlived its SIGKILLed sweep"
    assert summary(run.run_dir)["status"] != "completed"

    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert f"resuming the interrupted run in {run.run_dir}" in result.stderr
    finished = summary(run.run_dir)
    assert finished["status"] == "completed" and finished["steps"] == epochs * (256 - 64) // 32
