"""Planning a sweep with the CLI's own parser, and what the slurm and wandb launchers write.

The slurm script is checked by running its task selection in bash with a stand-in `srun` that prints
the command it receives; the W&B file by parsing the command W&B would run back through the CLI.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightning_app.sweep import main, plan_sweep
from lightning_app.sweep_export import slurm_script, wandb_sweep
from lightning_app.sweep_spec import load_sweep

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def run_from_repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)


def make_sweep(tmp_path, grid: str, extra: str = "") -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(f"config: configs/quickstart.yaml\nargs: {{trainer.default_root_dir: {tmp_path / 'runs'}}}\n"
                    f"grid:\n{grid}{extra}")
    return path


def test_plan_names_every_run_and_finds_finished_ones(tmp_path):
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n  model.lr: [0.001, 1.0e-05]\n"))
    runs = plan_sweep(spec)
    names = [run.run_dir.name for run in runs]
    assert [n.rsplit("_", 1)[0] for n in names] == [
        "fashion_mnist_small_cnn_bn_bs128_lr0.001_s0", "fashion_mnist_small_cnn_bn_bs128_lr1e-05_s0",
        "fashion_mnist_small_cnn_gn_g4_bs128_lr0.001_s0", "fashion_mnist_small_cnn_gn_g4_bs128_lr1e-05_s0"]
    assert all(run.run_dir.parent == tmp_path / "runs" / "tiny" for run in runs)
    assert [run.action for run in runs] == ["start"] * 4
    assert [run.run_dir for run in plan_sweep(spec)] == [run.run_dir for run in runs]  # deterministic
    # a completed and an exploded run are skipped; a failed one with a checkpoint is resumed
    for run, status in zip(runs[:3], ("completed", "exploded", "failed")):
        (run.run_dir / "checkpoints").mkdir(parents=True)
        (run.run_dir / "summary.json").write_text(json.dumps({"status": status}))
    (runs[2].run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    assert [run.action for run in plan_sweep(spec)] == ["skip", "skip", "resume", "start"]


def test_grid_points_naming_the_same_run_are_run_once(tmp_path, capsys):
    runs = plan_sweep(load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn, bn]\n")))
    assert [run.point["model.norm"] for run in runs] == ["bn", "gn"]
    assert "1 grid point(s) name a run directory already planned" in capsys.readouterr().err


def test_a_bad_grid_value_names_its_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--config", str(make_sweep(tmp_path, "  model.optimizer: [adam, rmsprop]\n")), "--dry-run"])
    assert info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("normlab: error: sweep run (model.optimizer=rmsprop):")


def test_slurm_script_runs_each_unfinished_run_once(tmp_path):
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn, gn_plus_gn_first]\n",
                                 "slurm: {gpus: 2, time: '01:00:00', max_parallel: 4, setup: ['echo setting up >&2'],"
                                 " sbatch: ['--account=lab']}\n"))
    first = plan_sweep(spec)[0]
    first.run_dir.mkdir(parents=True)
    (first.run_dir / "summary.json").write_text(json.dumps({"status": "completed"}))
    runs = plan_sweep(spec)
    todo = runs[1:]
    log_dir = tmp_path / "logs"
    script = slurm_script(spec, runs, log_dir)
    directives = [line.split(" ", 1)[1] for line in script.splitlines() if line.startswith("#SBATCH")]
    assert "--array=0-1%4" in directives  # one task per unfinished run
    assert {"--signal=SIGUSR1@90", "--requeue", "--gres=gpu:2", "--ntasks-per-node=2", "--time=01:00:00",
            f"--output={log_dir}/%A_%a.log", "--account=lab", f"--chdir={ROOT}"} <= set(directives)
    assert f'srun {sys.executable} -m lightning_app "${{ARGS[@]}}"' in script
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text('#!/bin/bash\nprintf "%s\\0" "$@"\n')
    (fake_bin / "srun").chmod(0o755)
    script_path = tmp_path / "job.sbatch"
    script_path.write_text(script)
    for task, run in enumerate(todo):
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(task), "PATH": f"{fake_bin}:{os.environ['PATH']}"}
        result = subprocess.run(["bash", str(script_path)], env=env, capture_output=True, text=True, check=True)
        assert result.stdout.split("\0")[:-1] == [sys.executable, "-m", "lightning_app", "fit", *run.args]
        assert result.stderr.strip() == "setting up"  # the setup lines ran before srun
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "2", "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    assert subprocess.run(["bash", str(script_path)], env=env, capture_output=True).returncode == 2


def test_slurm_launcher_submits_with_sbatch_when_present(tmp_path, monkeypatch, capsys):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "sbatch_calls"
    (fake_bin / "sbatch").write_text(f'#!/bin/bash\necho "$@" >> {calls}\necho "Submitted batch job 42"\n')
    (fake_bin / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")
    with pytest.raises(SystemExit) as info:
        main(["--config", str(make_sweep(tmp_path, "  model.norm: [bn, gn]\n")), "--launcher", "slurm"])
    assert info.value.code == 0
    script = tmp_path / "runs" / "tiny" / "_sweep" / "slurm" / "sweep.sbatch"
    assert calls.read_text().split() == [str(script)]
    assert "#SBATCH --array=0-1" in script.read_text() and "Submitted batch job 42" in capsys.readouterr().out


def test_wandb_sweep_puts_fit_and_configs_before_the_swept_args(tmp_path):
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n  model.lr: [0.001, 0.01]\n", "seeds: [0, 1]\n"))
    runs = plan_sweep(spec)
    config = wandb_sweep(spec, runs, tmp_path / "_sweep", ["--trainer.max_epochs", "1"])
    command = config["command"]
    assert command[:5] == ["${env}", "${interpreter}", "-m", "lightning_app", "fit"]
    assert command[5:7] == ["--config", "configs/quickstart.yaml"] and command[-1] == "${args}"
    assert command[-3:-1] == ["--trainer.max_epochs", "1"]
    assert config["parameters"] == {"seed_everything": {"values": [0, 1]}, "model.norm": {"values": ["bn", "gn"]},
                                    "model.lr": {"values": [0.001, 0.01]}}
    assert config["method"] == "grid" and config["name"] == "tiny"


def test_wandb_override_files_reproduce_every_planned_run(tmp_path):
    """Keys varied together cannot be a W&B grid: each run becomes a config file W&B passes as --config."""
    from lightning_app.sweep import _RunPlanner

    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n  data.init_args.batch_size, model.lr: "
                                           "[[16, 0.0125], [128, 0.1]]\n  model.norm_options: [null]\n"))
    runs = plan_sweep(spec)
    config = wandb_sweep(spec, runs, tmp_path / "_sweep", [])
    files = config["parameters"]["config"]["values"]
    assert len(files) == len(runs) == 4
    fixed = config["command"][5:-1]
    planner = _RunPlanner(fixed, "fixed")
    for run, file in zip(runs, files):
        assert yaml.safe_load(Path(file).read_text())["model"]["norm"] == run.point["model.norm"]
        # W&B's ${args} renders the parameter as --config=<file>
        assert planner.run_dir_of(fixed + [f"--config={file}"], {}, file) == run.run_dir


def test_wandb_falls_back_to_override_files_for_values_its_rendering_would_change(tmp_path):
    # W&B passes `--model.lr=1e-05` (str()), which YAML reads as the string '1e-05', not a float
    spec = load_sweep(make_sweep(tmp_path, "  model.lr: [0.001, 1.0e-05]\n"))
    runs = plan_sweep(spec)
    config = wandb_sweep(spec, runs, tmp_path / "_sweep", [])
    assert list(config["parameters"]) == ["config"] and len(config["parameters"]["config"]["values"]) == 2


class FakeTraining:
    """Stands in for a `lightning fit` subprocess: records its GPU, writes a completed summary.json."""
    launched: list = []

    def __init__(self, command, env, stdout, stderr, start_new_session):
        run_dir = Path(self.run_dirs.pop(0))
        FakeTraining.launched.append((run_dir, env.get("CUDA_VISIBLE_DEVICES"), Path(stdout.name).name))
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "test_acc": 0.5}))
        self.returncode = None

    def poll(self):
        self.returncode = 0
        return 0


def test_parallel_runs_each_get_their_own_gpu_and_log(tmp_path, monkeypatch):
    from lightning_app import sweep

    runs = plan_sweep(load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn, gn_plus_gn_first]\n")))
    FakeTraining.run_dirs = [run.run_dir for run in runs]
    FakeTraining.launched = []
    monkeypatch.setattr(sweep.subprocess, "Popen", FakeTraining)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert sweep.run_local(runs, parallel=2, log_dir=tmp_path / "logs", poll_seconds=0) == 0
    assert [(d, gpu) for d, gpu, _ in FakeTraining.launched] == [
        (runs[0].run_dir, "3"), (runs[1].run_dir, "5"), (runs[2].run_dir, "3")]  # a freed slot's GPU is reused
    assert [log for _, _, log in FakeTraining.launched] == [f"{run.run_dir.name}.log" for run in runs]
    with pytest.raises(ValueError, match="--parallel 3 needs 3 GPUs, 2 are visible"):
        sweep.run_local(runs, parallel=3, log_dir=tmp_path / "logs")


def test_a_trimmed_run_is_not_mistaken_for_the_full_one(tmp_path):
    """Checking a sweep with `-- --trainer.limit_train_batches N` must not mark the real runs finished."""
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn]\n"))
    (full,) = plan_sweep(spec)
    (trimmed,) = plan_sweep(spec, ["--trainer.limit_train_batches", "5"])
    assert trimmed.run_dir != full.run_dir
