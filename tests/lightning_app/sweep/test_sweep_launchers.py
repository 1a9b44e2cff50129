"""Planning a sweep with the CLI's own parser, and what the slurm and wandb launchers write.

The slurm script is checked by running its task selection in bash with a stand-in `srun` that prints
the command it receives; the W&B file by parsing the command W&B would run back through the CLI.
"""
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lightning_app.sweep.command import main
from lightning_app.sweep.export import (ClusterNodes, JobShape, _gpu_count, _leading_int, _survives_wandb, comment,
                                       device_count, job_shape, query_cluster, queued_arrays, slurm_script,
                                       submit_slurm, wandb_sweep, write_wandb_sweep)
from lightning_app.sweep.plan import plan_sweep
from lightning_app.sweep.spec import load_sweep
from tests.helpers import ROOT, ends_within, error_line, process_alive


pytestmark = pytest.mark.usefixtures("run_from_repo_root")  # base config paths are relative to the cwd


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
    # the CLI's own one-line explanation, as `lightning fit --model.optimizer rmsprop` prints it
    assert error.endswith("model.optimizer: got 'rmsprop', expected one of 'sgd', 'adam', 'adamw'")


@pytest.mark.parametrize("options,expected", [
    (["--launcher", "sl"], "launcher: got 'sl', expected one of 'local', 'slurm', 'wandb'"),
    (["--parallel", "two"], "parallel: got 'two', expected int"),
    (["--parallel", "0"], "--parallel must be >= 1, got 0"),
    (["--dry-runn"], "unknown config key 'dry-runn'; did you mean 'dry-run'?"),
])
def test_a_bad_sweep_option_is_one_line_before_any_planning(tmp_path, capsys, options, expected):
    sweep = make_sweep(tmp_path, "  model.norm: [bn, gn]\n")
    assert error_line(capsys, lambda: main(["--config", str(sweep), *options])) == expected
    assert not (tmp_path / "runs").exists()


def test_the_sweep_file_is_required(capsys):
    assert error_line(capsys, lambda: main(["--dry-run"])) == "the following arguments are required: config"


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
    script = slurm_script(spec, runs, log_dir, ClusterNodes(cpus=32, gpus=4))
    directives = sbatch_directives(script)
    assert "--array=0-1%4" in directives  # one task per unfinished run
    assert {"--signal=SIGUSR1@90", "--requeue", "--gres=gpu:2", "--ntasks-per-node=2", "--time=01:00:00",
            "--cpus-per-task=8",
            f"--output={log_dir}/%A_%a.log", "--account=lab", f"--chdir={ROOT}"} <= set(directives)
    assert f'srun --kill-on-bad-exit=1 {sys.executable} -m lightning_app "${{ARGS[@]}}"' in script
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text('#!/bin/bash\nprintf "%s\\0" "$@"\n')
    (fake_bin / "srun").chmod(0o755)
    script_path = tmp_path / "job.sbatch"
    script_path.write_text(script)
    for task, run in enumerate(todo):
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(task), "PATH": f"{fake_bin}:{os.environ['PATH']}"}
        result = subprocess.run(["bash", str(script_path)], env=env, capture_output=True, text=True, check=True)
        assert result.stdout.split("\0")[:-1] == ["--kill-on-bad-exit=1", sys.executable, "-m", "lightning_app", "fit",
                                                  *run.args]
        assert result.stderr.strip() == "setting up"  # the setup lines ran before srun
    env = {**os.environ, "SLURM_ARRAY_TASK_ID": "2", "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    assert subprocess.run(["bash", str(script_path)], env=env, capture_output=True).returncode == 2


def sbatch_directives(script: str) -> list[str]:
    return [line.split(" ", 1)[1] for line in script.splitlines() if line.startswith("#SBATCH")]


def fake_command(tmp_path, monkeypatch, name: str, body: str) -> None:
    """An executable `name` first on PATH, running the bash `body`."""
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir(exist_ok=True)
    (fake_bin / name).write_text(f"#!/bin/bash\n{body}\n")
    (fake_bin / name).chmod(0o755)
    if not os.environ["PATH"].startswith(f"{fake_bin}:"):
        monkeypatch.setenv("PATH", f"{fake_bin}:{os.environ['PATH']}")


def test_slurm_launcher_submits_with_sbatch_when_present(tmp_path, monkeypatch, capsys):
    calls = tmp_path / "sbatch_calls"
    fake_command(tmp_path, monkeypatch, "sbatch", f'echo "$@" >> {calls}\necho "Submitted batch job 42"')
    fake_command(tmp_path, monkeypatch, "sinfo", 'echo "16|gpu:2"')
    with pytest.raises(SystemExit) as info:
        main(["--config", str(make_sweep(tmp_path, "  model.norm: [bn, gn]\n")), "--launcher", "slurm"])
    assert info.value.code == 0
    script = tmp_path / "runs" / "tiny" / "_sweep" / "slurm" / "sweep.sbatch"
    assert calls.read_text().split() == [str(script)]
    assert "#SBATCH --array=0-1" in script.read_text() and "Submitted batch job 42" in capsys.readouterr().out
    assert {"--gres=gpu:1", "--ntasks-per-node=1", "--cpus-per-task=8"} <= set(sbatch_directives(script.read_text()))


def test_sinfo_gres_and_cpus_are_read_per_partition(tmp_path, monkeypatch):
    args = tmp_path / "sinfo_args"
    fake_command(tmp_path, monkeypatch, "sinfo", f'echo "$@" > {args}\nprintf "48|gpu:a100:4(S:0-1)\\n'
                                                 f'64|gpu:v100:2,gpu:t4:2\\n32+|(null)\\n"')
    assert query_cluster("gpu") == ClusterNodes(cpus=32, gpus=4)  # the smallest node's CPUs, the most GPUs
    assert args.read_text().split() == ["--noheader", "--format=%c|%G", "--partition=gpu"]
    fake_command(tmp_path, monkeypatch, "sinfo", 'echo "sinfo: error: Unable to contact slurm controller" >&2; exit 1')
    with pytest.raises(ValueError, match="gave no nodes .exit 1.: sinfo: error: Unable to contact"):
        query_cluster()


@pytest.mark.parametrize("accelerator, devices, settings, cluster, shape", [
    # a GPU cluster: one GPU and one task per device, the node's CPUs per GPU
    ("auto", 1, {}, ClusterNodes(64, 8), (1, 1, 8)),
    ("gpu", 4, {}, ClusterNodes(64, 8), (4, 4, 8)),
    ("gpu", "0,1", {}, ClusterNodes(64, 8), (2, 2, 8)),
    ("auto", "auto", {}, ClusterNodes(64, 8), (1, 1, 8)),
    ("cpu", 1, {}, ClusterNodes(64, 8), (0, 1, 64)),  # a CPU run asks for no GPU, even where there are some
    # a CPU cluster: no GPU, one task per device (DDP on gloo), the node's CPUs shared by the tasks
    ("auto", 1, {}, ClusterNodes(2, 0), (0, 1, 2)),
    ("cpu", 2, {}, ClusterNodes(2, 0), (0, 2, 1)),
    ("cpu", 4, {}, ClusterNodes(2, 0), (0, 4, 1)),
    # the sweep file's values win; without sinfo, a GPU per device and 8 CPUs per task
    ("auto", 1, {"gpus": 0, "cpus_per_task": 3}, ClusterNodes(64, 8), (0, 1, 3)),
    ("auto", 2, {}, None, (2, 2, 8)),
    ("cpu", 1, {}, None, (0, 1, 8)),
])
def test_job_shape_fits_the_run_to_the_cluster(accelerator, devices, settings, cluster, shape):
    found = job_shape(accelerator, devices, settings, cluster)
    assert (found.gpus, found.tasks, found.cpus_per_task) == shape


def test_a_grid_over_trainer_devices_plans_and_shapes_its_jobs(tmp_path):
    """`--trainer.devices 2` parses to the text '2' (the key accepts a str before an int): the same count."""
    runs = plan_sweep(load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n  trainer.devices: [2]\n"
                                                      "  trainer.accelerator: [cpu]\n")))
    assert [run.point["trainer.devices"] for run in runs] == [2, 2]
    assert [run.run_dir.parent for run in runs] == [tmp_path / "runs" / "tiny"] * 2
    assert {job_shape(run.accelerator, run.devices, {}, ClusterNodes(8, 0)) for run in runs} == {JobShape(0, 2, 4)}


def test_job_shape_refuses_what_the_cluster_cannot_give():
    with pytest.raises(ValueError, match="trainer.accelerator=gpu but the SLURM cluster has no GPUs"):
        job_shape("gpu", 1, {}, ClusterNodes(2, 0))
    with pytest.raises(ValueError, match="need 8 GPUs on one node .trainer.devices=8. but the cluster's nodes have at most 4"):
        job_shape("auto", 8, {}, ClusterNodes(64, 4))


SHIPPED_SWEEPS = sorted((ROOT / "configs" / "sweeps").glob("*.yaml"))


@pytest.mark.slow  # planning every shipped sweep takes about half a minute
@pytest.mark.parametrize("sweep_file", SHIPPED_SWEEPS, ids=lambda p: p.stem)
def test_every_shipped_sweep_asks_a_gpu_cluster_for_one_gpu_per_run(sweep_file, tmp_path):
    """On a GPU cluster (8 GPUs, 64 CPUs per node) every shipped sweep's script asks for one GPU, one task
    and the node's CPUs per GPU: the sweep files leave the resources to the launcher. A sweep whose runs
    are pinned to the CPU (the batch-size study) asks for no GPU and the node's CPUs. The CPU test
    cluster's side is tests/cluster/ (sbatch --test-only on the real cluster)."""
    spec = load_sweep(sweep_file)
    runs = plan_sweep(spec)
    directives = sbatch_directives(slurm_script(spec, runs, tmp_path, ClusterNodes(cpus=64, gpus=8)))
    on_cpu = {run.accelerator for run in runs} == {"cpu"}
    expected = ({"--ntasks-per-node=1", "--cpus-per-task=64", "--nodes=1"} if on_cpu
                else {"--gres=gpu:1", "--ntasks-per-node=1", "--cpus-per-task=8", "--nodes=1"})
    assert expected <= set(directives)
    assert len([d for d in directives if d.startswith(("--gres", "--cpus-per-task", "--ntasks"))]) == len(expected) - 1


def test_wandb_sweep_puts_fit_and_configs_before_the_swept_args(tmp_path):
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n  model.lr: [0.001, 0.01]\n", "seeds: [0, 1]\n"))
    runs = plan_sweep(spec)
    config = wandb_sweep(spec, runs, tmp_path / "_sweep", ["--trainer.max_epochs", "1"])
    command = config["command"]
    assert command[:5] == ["${env}", "${interpreter}", "-m", "lightning_app", "fit"]
    assert command[5:9] == ["--config", "configs/presets/wandb.yaml", "--config", "configs/quickstart.yaml"]
    assert command[-1] == "${args}"
    assert command[-3:-1] == ["--trainer.max_epochs", "1"]
    assert config["parameters"] == {"seed_everything": {"values": [0, 1]}, "model.norm": {"values": ["bn", "gn"]},
                                    "model.lr": {"values": [0.001, 0.01]}}
    assert config["method"] == "grid" and config["name"] == "tiny"


def test_wandb_override_files_reproduce_every_planned_run(tmp_path):
    """Keys varied together cannot be a W&B grid: each run becomes a config file W&B passes as --config."""
    from lightning_app.sweep.cli_planner import RunPlanner

    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n  data.init_args.batch_size, model.lr: "
                                           "[[16, 0.0125], [128, 0.1]]\n  model.norm_options: [null]\n"))
    runs = plan_sweep(spec)
    config = wandb_sweep(spec, runs, tmp_path / "_sweep", [])
    files = config["parameters"]["config"]["values"]
    assert len(files) == len(runs) == 4
    fixed = config["command"][5:-1]
    planner = RunPlanner(fixed, "fixed")
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

    def __init__(self, command, env, stdout, stderr, start_new_session, preexec_fn):
        run_dir = Path(self.run_dirs.pop(0))
        FakeTraining.launched.append((run_dir, env.get("CUDA_VISIBLE_DEVICES"), stdout and Path(stdout.name).name,
                                      env.get("OMP_NUM_THREADS")))
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps({"status": "completed", "test_acc": 0.5}))
        self.returncode = None

    def poll(self):
        self.returncode = 0
        return 0


@pytest.fixture
def three_fake_runs(tmp_path, monkeypatch):
    """Three planned runs whose trainings are FakeTraining processes; OMP_NUM_THREADS unset."""
    from lightning_app.sweep import local

    runs = plan_sweep(load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn, gn_plus_gn_first]\n")))
    FakeTraining.run_dirs = [run.run_dir for run in runs]
    FakeTraining.launched = []
    monkeypatch.setattr(local.subprocess, "Popen", FakeTraining)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return local, runs


def test_parallel_runs_each_get_their_own_gpu_and_log(tmp_path, monkeypatch, three_fake_runs):
    local, runs = three_fake_runs
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert local.run_local(runs, parallel=2, log_dir=tmp_path / "logs", poll_seconds=0) == 0
    assert [(d, gpu, threads) for d, gpu, _, threads in FakeTraining.launched] == [
        (runs[0].run_dir, "3", None), (runs[1].run_dir, "5", None), (runs[2].run_dir, "3", None)]  # GPU reused
    assert [log for _, _, log, _ in FakeTraining.launched] == [f"{run.run_dir.name}.log" for run in runs]
    with pytest.raises(ValueError, match="--parallel 3 needs 3 GPUs, 2 are visible"):
        local.run_local(runs, parallel=3, log_dir=tmp_path / "logs")


def test_parallel_runs_on_the_cpu_share_its_cores(tmp_path, monkeypatch, three_fake_runs):
    local, runs = three_fake_runs
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.setattr(local.os, "sched_getaffinity", lambda pid: set(range(8)))
    assert local.run_local(runs, parallel=3, log_dir=tmp_path / "logs", poll_seconds=0) == 0
    assert [threads for *_, threads in FakeTraining.launched] == ["2", "2", "2"]  # 8 cores // 3 runs
    assert local.cpu_threads(1) is None and local.cpu_threads(16) == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "4")
    assert local.cpu_threads(3) is None  # the user's own setting is passed on untouched


def test_a_child_does_not_outlive_a_killed_parent(tmp_path):
    """The preexec_fn the sweep starts trainings with: SIGKILL the parent, and its child gets SIGTERM."""
    parent_code = ("import subprocess, sys, time\n"
                   "from lightning_app.sweep.local import _training_preexec\n"
                   "child = subprocess.Popen(['sleep', '300'], start_new_session=True, preexec_fn=_training_preexec())\n"
                   "print(child.pid, flush=True)\n"
                   "time.sleep(300)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    child_pid = int(parent.stdout.readline())
    assert process_alive(child_pid)
    parent.kill()
    parent.wait()
    assert ends_within(child_pid, 10), "the child outlived its SIGKILLed parent"


def test_a_background_sweep_still_gives_its_trainings_ctrl_c():
    """`nohup lightning sweep ... &` starts the sweep with SIGINT ignored; its trainings must still stop
    on the one SIGINT the sweep sends them, so they get Python's KeyboardInterrupt handler back."""
    parent_code = ("import signal, subprocess, sys\n"
                   "signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a shell does to `cmd &`\n"
                   "from lightning_app.sweep.local import _training_preexec\n"
                   "probe = 'import signal; print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)'\n"
                   "subprocess.run([sys.executable, '-c', probe], preexec_fn=_training_preexec(), check=True)\n")
    result = subprocess.run([sys.executable, "-c", parent_code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "True", result.stderr[-2000:]


def test_a_trimmed_run_is_not_mistaken_for_the_full_one(tmp_path):
    """Checking a sweep with `-- --trainer.limit_train_batches N` must not mark the real runs finished."""
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn]\n"))
    (full,) = plan_sweep(spec)
    (trimmed,) = plan_sweep(spec, ["--trainer.limit_train_batches", "5"])
    assert trimmed.run_dir != full.run_dir


def test_a_sequential_sweep_leaves_every_visible_gpu_to_each_run(tmp_path, monkeypatch, three_fake_runs):
    """--parallel 1 pins nothing: each training sees the GPUs the sweep sees (and may use several)."""
    local, runs = three_fake_runs
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert local.run_local(runs, parallel=1, log_dir=tmp_path / "logs", poll_seconds=0) == 0
    assert [(d, gpu) for d, gpu, _, _ in FakeTraining.launched] == [(run.run_dir, "3,5") for run in runs]


def test_a_training_is_finished_only_if_it_exits_0_and_its_summary_says_so(tmp_path, monkeypatch, capsys):
    """Real processes with real exit codes: a summary that says completed from a process that then failed
    (exit 1), and a clean exit whose summary says failed, are both failures of the sweep."""
    from lightning_app.sweep import local

    runs = plan_sweep(load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn, gn_plus_gn_first]\n")))
    outcomes = dict(zip([run.run_dir for run in runs], [("completed", 0), ("completed", 1), ("failed", 0)]))
    real_popen = subprocess.Popen

    def training(command, env, **kwargs):
        run_dir = next(run.run_dir for run in runs if run.args == command[4:])
        status, code = outcomes[run_dir]
        run_dir.mkdir(parents=True)
        (run_dir / "summary.json").write_text(json.dumps({"status": status, "test_acc": 0.5}))
        return real_popen(["bash", "-c", f"exit {code}"], env=env, **kwargs)

    monkeypatch.setattr(local.subprocess, "Popen", training)
    assert local.run_local(runs, parallel=1, log_dir=tmp_path / "logs", poll_seconds=0.01) == 1
    captured = capsys.readouterr()
    assert f"sweep: completed (exit 1) {runs[1].run_dir}" in captured.out
    assert captured.err.strip().splitlines()[-1] == f"sweep: 2 run(s) failed: {runs[1].run_dir}, {runs[2].run_dir}"


def test_tasks_tsv_names_the_run_each_array_task_trains(tmp_path, monkeypatch):
    """With the first and third runs finished, task i of the submitted script trains the run on line i
    of tasks.tsv: the script's own task selection, run in bash with a stand-in srun, is the reference."""
    fake_command(tmp_path, monkeypatch, "sbatch", 'echo "Submitted batch job 7"')
    fake_command(tmp_path, monkeypatch, "sinfo", 'echo "8|(null)"')
    fake_command(tmp_path, monkeypatch, "srun", 'printf "%s\\0" "$@"')
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn, gn_plus_gn_first, gn_plus_parallel]\n"))
    for run in plan_sweep(spec)[0::2]:
        run.run_dir.mkdir(parents=True)
        (run.run_dir / "summary.json").write_text(json.dumps({"status": "completed"}))
    with pytest.raises(SystemExit) as info:
        main(["--config", str(spec.path), "--launcher", "slurm"])
    assert info.value.code == 0
    slurm_dir = tmp_path / "runs" / "tiny" / "_sweep" / "slurm"
    rows = [line.split("\t") for line in (slurm_dir / "tasks.tsv").read_text().splitlines()]
    runs = plan_sweep(spec)
    assert [task for task, _ in rows] == ["0", "1"]
    assert {Path(run_dir) for _, run_dir in rows} == {run.run_dir for run in runs if run.action != "skip"}
    for task, run_dir in rows:
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": task}
        srun = subprocess.run(["bash", str(slurm_dir / "sweep.sbatch")], env=env, capture_output=True, text=True,
                              check=True).stdout.split("\0")[:-1]
        (trained,) = [run for run in runs if ["fit", *run.args] == srun[-1 - len(run.args):]]
        assert trained.run_dir == Path(run_dir), task


def test_the_wandb_sweep_file_is_a_header_then_the_configuration_in_its_order(tmp_path, capsys):
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n  model.lr: [0.001, 1.0e-05]\n"))
    runs = plan_sweep(spec)
    sweep_dir = tmp_path / "runs" / "tiny" / "_sweep"
    path = write_wandb_sweep(spec, runs, sweep_dir, ["--trainer.max_epochs", "1"])
    assert path == sweep_dir / "wandb_sweep.yaml"
    header, body = path.read_text().split("\n", 1)
    assert header == (f"# W&B sweep for normlab sweep 'tiny' ({tmp_path / 'tiny.yaml'}), written by `lightning sweep "
                      "--launcher wandb`.")
    config = yaml.safe_load(body)
    assert list(config) == ["program", "method", "metric", "parameters", "command", "name"]  # as built, unsorted
    files = config["parameters"]["config"]["values"]  # 1e-05 would not survive W&B's rendering: override files
    assert [Path(f).parent for f in files] == [sweep_dir / "wandb_runs"] * 4 and all(Path(f).is_file() for f in files)
    assert capsys.readouterr().out == (
        f"sweep: wrote {path}\n  create the sweep: wandb sweep {path}\n  then on each machine: wandb agent "
        "<entity>/<project>/<sweep id>   (runs W&B already finished are refused by the CLI: a completed run "
        "directory is never overwritten)\n")


def test_queued_arrays_are_those_squeue_lists_with_this_scripts_path(tmp_path, monkeypatch):
    """squeue's `%F|%o` rows: the array job id and the command, an absolute path (here the script itself, the
    script through a symlink, a relative path that would resolve to it from here, and other scripts); the
    ids in numeric order."""
    script = tmp_path / "we|ird" / "slurm" / "sweep.sbatch"
    script.parent.mkdir(parents=True)
    script.write_text("#!/bin/bash\n")
    (tmp_path / "link").symlink_to(tmp_path / "we|ird")
    rows = [f"7|{script}", f"100|{tmp_path / 'link' / 'slurm' / 'sweep.sbatch'}", f"7|{script}",
            f"12|{tmp_path / 'other.sbatch'}", "5|slurm/sweep.sbatch", "6|(null)"]
    fake_command(tmp_path, monkeypatch, "squeue", '[ "$*" = "--noheader --format=%F|%o" ] || exit 3\n'
                 + "".join(f"echo {shlex.quote(row)}\n" for row in rows))
    monkeypatch.chdir(script.parent.parent)
    assert queued_arrays(script) == ["7", "100"]
    monkeypatch.setenv("PATH", "/nonexistent")
    assert queued_arrays(script) == []  # no squeue: nothing SLURM could hold


def only_fake_commands(tmp_path, monkeypatch, **bodies: str) -> None:
    """PATH holds the fakes alone: a SLURM command not faked here does not exist (this machine may have one)."""
    for name, body in bodies.items():
        fake_command(tmp_path, monkeypatch, name, body)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))


def slurm_plan(tmp_path, extra: str = ""):
    spec = load_sweep(make_sweep(tmp_path, "  model.norm: [bn, gn]\n", extra))
    return spec, plan_sweep(spec), tmp_path / "runs" / "tiny" / "_sweep"


@pytest.mark.parametrize("slurm, sinfo_args", [("", ""), ("slurm: {partition: gpu}\n", " --partition=gpu")])
def test_submit_slurm_asks_sinfo_about_the_partition_and_says_where_the_logs_go(tmp_path, monkeypatch, capsys,
                                                                              slurm, sinfo_args):
    only_fake_commands(tmp_path, monkeypatch, squeue="true",
                       sinfo=f'[ "$*" = "--noheader --format=%c|%G{sinfo_args}" ] || exit 3\necho "32|gpu:2"',
                       sbatch='echo "Submitted batch job 42"')
    spec, runs, sweep_dir = slurm_plan(tmp_path, slurm)
    assert submit_slurm(spec, runs, sweep_dir) == 0
    log_dir = sweep_dir / "slurm"
    assert capsys.readouterr().out == ("Submitted batch job 42\nsweep: submitted 2 array tasks; logs in "
                                       f"{log_dir}, task -> run in {log_dir / 'tasks.tsv'}\n")
    directives = sbatch_directives((log_dir / "sweep.sbatch").read_text())
    assert "--cpus-per-task=16" in directives  # 32 CPUs of a node shared by its 2 GPUs: sinfo was read
    assert f"--output={log_dir}/%A_%a.log" in directives


def test_a_failed_sbatch_is_one_error_after_its_own_words(tmp_path, monkeypatch, capsys):
    only_fake_commands(tmp_path, monkeypatch, sbatch='echo "sbatch: error: invalid partition" >&2; exit 1')
    spec, runs, sweep_dir = slurm_plan(tmp_path)
    script = sweep_dir / "slurm" / "sweep.sbatch"
    with pytest.raises(ValueError, match=f"^{re.escape(f'sbatch {script} failed with exit code 1')}$"):
        submit_slurm(spec, runs, sweep_dir)
    assert capsys.readouterr().out == "sbatch: error: invalid partition\n"


def test_without_sbatch_the_script_is_printed_to_submit_elsewhere(tmp_path, monkeypatch, capsys):
    only_fake_commands(tmp_path, monkeypatch)
    spec, runs, sweep_dir = slurm_plan(tmp_path)
    assert submit_slurm(spec, runs, sweep_dir) == 0
    script = sweep_dir / "slurm" / "sweep.sbatch"
    assert capsys.readouterr().out == (f"sweep: sbatch not found; the job-array script is {script} (submit it with: "
                                       f"sbatch {script}):\n\n{script.read_text()}\n")
    assert "--cpus-per-task=8" in sbatch_directives(script.read_text())  # no sinfo: the default


@pytest.mark.parametrize("held, expected", [
    (False, "sweep: every run is finished; nothing to submit\n"),
    (True, "sweep: every run is finished or running elsewhere (1); nothing to submit\n")])
def test_nothing_to_submit_says_why(tmp_path, monkeypatch, capsys, held, expected):
    only_fake_commands(tmp_path, monkeypatch, sbatch="exit 9")
    spec, runs, sweep_dir = slurm_plan(tmp_path)
    runs[0].status = "completed"
    if held:
        runs[1].holder = {"pid": 1, "host": "elsewhere"}
    else:
        runs[1].status = "exploded"
    assert submit_slurm(spec, runs, sweep_dir) == 0
    assert capsys.readouterr().out == expected
    assert not sweep_dir.exists()  # nothing written


def test_a_sweep_whose_array_is_still_queued_is_not_submitted_again(tmp_path, monkeypatch):
    spec, runs, sweep_dir = slurm_plan(tmp_path)
    script = sweep_dir / "slurm" / "sweep.sbatch"
    only_fake_commands(tmp_path, monkeypatch, sbatch="exit 9", squeue=f"echo '100|{script}'; echo '7|{script}'")
    with pytest.raises(ValueError) as error:
        submit_slurm(spec, runs, sweep_dir)
    assert str(error.value) == (f"job array 7, 100 of this sweep ({script}) is still queued or running; submitting "
                                "again would start its runs a second time. Wait for it to end (squeue), or cancel "
                                "it first: scancel 7 100")
    assert not script.exists()


@pytest.mark.parametrize("gres, gpus", [
    ("gpu:4", 4), ("gpu:a100:4(S:0-1)", 4), ("gpu:4(S:0,1)", 4), ("gpu:a100:2,gpu:v100:2", 4),
    ("gpu:2,fpga:1", 2), ("gpu", 0), ("(null)", 0)])
def test_gpus_of_a_gres_string(gres, gpus):
    assert _gpu_count(gres) == gpus


def test_a_cpu_count_sinfo_cannot_say_counts_as_one():
    assert (_leading_int("32+"), _leading_int(" 8"), _leading_int("N/A")) == (32, 8, 1)


@pytest.mark.parametrize("sinfo, exit_status, message", [
    ("", 0, "empty output"),
    ("16|gpu:2", 1, "16|gpu:2"),  # rows, but sinfo failed: not trusted
])
def test_sinfo_without_nodes_or_failing_is_one_error(tmp_path, monkeypatch, sinfo, exit_status, message):
    fake_command(tmp_path, monkeypatch, "sinfo", f"echo -n {shlex.quote(sinfo)}; exit {exit_status}")
    with pytest.raises(ValueError) as error:
        query_cluster()
    assert str(error.value) == f"`sinfo --noheader --format=%c|%G` gave no nodes (exit {exit_status}): {message}"


def test_the_array_is_shaped_by_the_runs_devices_on_this_cluster(tmp_path):
    spec, runs, sweep_dir = slurm_plan(tmp_path)
    for run in runs:
        run.accelerator, run.devices = "gpu", 2
    directives = sbatch_directives(slurm_script(spec, runs, sweep_dir / "slurm", ClusterNodes(cpus=48, gpus=4)))
    assert {"--gres=gpu:2", "--ntasks-per-node=2", "--cpus-per-task=12"} <= set(directives)


def test_an_unknown_slurm_setting_is_named_with_the_allowed_ones(tmp_path, monkeypatch):
    """By the script alone, and by a submission before it asks sinfo anything."""
    only_fake_commands(tmp_path, monkeypatch, sinfo="exit 9", sbatch="exit 9")
    spec, runs, sweep_dir = slurm_plan(tmp_path, "slurm: {gpu: 1}\n")
    expected = ("sweep 'slurm' section: unknown key(s) ['gpu']; allowed: gpus, cpus_per_task, mem, time, partition, "
                "max_parallel, python, setup, sbatch")
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        slurm_script(spec, runs, sweep_dir / "slurm", None)
    with pytest.raises(ValueError, match=f"^{re.escape(expected)}$"):
        submit_slurm(spec, runs, sweep_dir)


def test_a_cuda_run_is_a_gpu_run():
    assert job_shape("cuda", 2, {}, ClusterNodes(64, 8)) == JobShape(gpus=2, tasks=2, cpus_per_task=8)
    with pytest.raises(ValueError) as error:
        job_shape("cuda", 1, {}, ClusterNodes(8, 0))
    assert str(error.value) == ("the runs ask for trainer.accelerator=cuda but the SLURM cluster has no GPUs (sinfo "
                                "shows no gpu GRES); use trainer.accelerator auto or cpu, or set slurm.partition to "
                                "a GPU partition")


@pytest.mark.parametrize("devices, count", [
    (1, 1), (2, 2), ("3", 3), (" 4 ", 4), ("0,1", 2), ([0, 1, 2], 3), (0, None), ("0", None), (-1, None),
    ("-1", None), ("auto", None), ("X2", None)])
def test_device_count_of_every_form_of_trainer_devices(devices, count):
    assert device_count(devices) == count


def expected_script(spec, runs, log_dir, directives: list[str], python: str, setup: list[str]) -> str:
    """The job-array script as the README and export.py's docstring describe it, line by line."""
    tasks = [f"  {i}) ARGS=({' '.join(shlex.quote(a) for a in ['fit', *run.args])}) ;;  # {run.run_dir}"
             for i, run in enumerate(runs)]
    return "\n".join([
        "#!/bin/bash",
        f"# normlab sweep 'tiny' ({spec.path}): one array task per unfinished run.",
        "# Written by `lightning sweep --launcher slurm`; run that command again to resubmit what is",
        "# not finished (interrupted runs resume from their last checkpoint).",
        *[f"#SBATCH {d}" for d in directives],
        "set -euo pipefail",
        "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}  # torch: the cores given, not all",
        *setup,
        'case "$SLURM_ARRAY_TASK_ID" in',
        *tasks,
        '  *) echo "no run for array task $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;',
        "esac",
        f'srun --kill-on-bad-exit=1 {python} -m lightning_app "${{ARGS[@]}}"',
        ""])


def test_the_slurm_script_with_every_setting(tmp_path):
    spec, runs, sweep_dir = slurm_plan(tmp_path, "slurm: {mem: 16G, partition: gpu, time: '02:00:00', max_parallel: 3, "
                                                 "python: /opt/py/bin/python, setup: [module load cuda], "
                                                 "sbatch: [--account=abc]}\n")
    log_dir = sweep_dir / "slurm"
    directives = ["--job-name=normlab-tiny", "--array=0-1%3", "--nodes=1", "--ntasks-per-node=1", "--gres=gpu:1",
                  "--cpus-per-task=16", "--time=02:00:00", "--mem=16G", "--partition=gpu",
                  f"--output={log_dir}/%A_%a.log", "--open-mode=append", "--signal=SIGUSR1@90", "--requeue",
                  f"--chdir={Path.cwd()}", "--account=abc"]
    assert slurm_script(spec, runs, log_dir, ClusterNodes(cpus=32, gpus=2)) == expected_script(
        spec, runs, log_dir, directives, "/opt/py/bin/python", ["module load cuda"])


def test_the_slurm_script_of_a_cpu_cluster_at_the_defaults(tmp_path):
    spec, runs, sweep_dir = slurm_plan(tmp_path)
    log_dir = sweep_dir / "slurm"
    directives = ["--job-name=normlab-tiny", "--array=0-1", "--nodes=1", "--ntasks-per-node=1", "--cpus-per-task=8",
                  "--time=24:00:00", f"--output={log_dir}/%A_%a.log", "--open-mode=append", "--signal=SIGUSR1@90",
                  "--requeue", f"--chdir={Path.cwd()}"]
    assert slurm_script(spec, runs, log_dir, ClusterNodes(cpus=8, gpus=0)) == expected_script(
        spec, runs, log_dir, directives, shlex.quote(sys.executable), [])


def test_runs_needing_different_resources_are_not_one_array(tmp_path):
    spec, runs, sweep_dir = slurm_plan(tmp_path)
    runs[0].accelerator, runs[0].devices = "gpu", 2  # the other: auto, 1 device
    with pytest.raises(ValueError) as error:
        slurm_script(spec, runs, sweep_dir / "slurm", ClusterNodes(cpus=32, gpus=4))
    assert str(error.value) == (
        "the runs of one job array need different resources ([JobShape(gpus=1, tasks=1, cpus_per_task=8), "
        "JobShape(gpus=2, tasks=2, cpus_per_task=8)]); split the sweep so that trainer.accelerator and "
        "trainer.devices are the same in each")


@pytest.mark.parametrize("value, survives", [
    ("bn", True), (0.001, True), (16, True), (1e-05, False), (None, False), ({"groups": 4}, False), ([1, 2], False),
    ("`x`", False), ("null", False)])
def test_which_values_wandb_renders_back_as_themselves(value, survives):
    assert _survives_wandb(value) is survives


def test_a_comment_escapes_every_control_character():
    assert comment("a\tb\nc\x1b[2Jd") == "a\\tb\\nc\\x1b[2Jd"
    assert comment(Path("/runs/x")) == "/runs/x"
    assert comment("σ(λ) sweep é") == "σ(λ) sweep é"  # printable non-ASCII stays as it is


def test_an_unknown_wandb_setting_is_named_with_the_allowed_ones(tmp_path):
    spec, runs, sweep_dir = slurm_plan(tmp_path, "wandb: {projekt: x}\n")
    with pytest.raises(ValueError) as error:
        wandb_sweep(spec, runs, sweep_dir, [])
    assert str(error.value) == ("sweep 'wandb' section: unknown key(s) ['projekt']; allowed: project, entity, name, "
                                "method, metric")


@pytest.mark.parametrize("accelerator, devices, settings, cluster, shape", [
    ("gpu", 4, {}, ClusterNodes(64, 4), (4, 4, 16)),  # every GPU of the node
    ("auto", 2, {"gpus": 1}, None, (1, 1, 8)),  # the sweep file's GPUs decide the tasks
    ("cpu", "auto", {}, ClusterNodes(8, 0), (0, 1, 8)),  # no count: one task
])
def test_job_shape_at_the_edges(accelerator, devices, settings, cluster, shape):
    assert job_shape(accelerator, devices, settings, cluster) == JobShape(*shape)


def test_the_wandb_configuration_whole_at_the_defaults_and_with_every_setting(tmp_path):
    spec, runs, sweep_dir = slurm_plan(tmp_path)
    command = ["${env}", "${interpreter}", "-m", "lightning_app", "fit", "--config", "configs/presets/wandb.yaml"]
    config = wandb_sweep(spec, runs, sweep_dir, [])
    assert config == {"program": "lightning_app/__main__.py", "method": "grid",
                      "metric": {"name": "val/acc", "goal": "maximize"},
                      "parameters": {"model.norm": {"values": ["bn", "gn"]}},
                      "command": [*command, *spec.run_args({}, []), "${args}"], "name": "tiny"}
    spec, runs, sweep_dir = slurm_plan(tmp_path, "wandb: {project: p, entity: e, name: n, method: random, "
                                                 "metric: {name: test/acc, goal: maximize}}\n")
    config = wandb_sweep(spec, runs, sweep_dir, [])
    assert {k: config[k] for k in ("method", "metric", "project", "entity", "name")} == {
        "method": "random", "metric": {"name": "test/acc", "goal": "maximize"}, "project": "p", "entity": "e",
        "name": "n"}


def test_a_wandb_override_file_keeps_the_grid_keys_in_their_order(tmp_path):
    spec = load_sweep(make_sweep(tmp_path, "  model.norm, data.init_args.batch_size: [[bn, 16]]\n"))
    config = wandb_sweep(spec, plan_sweep(spec), tmp_path / "_sweep", [])
    [file] = config["parameters"]["config"]["values"]
    assert Path(file).read_text() == "model:\n  norm: bn\ndata:\n  init_args:\n    batch_size: 16\n"


def test_a_setting_line_with_a_control_character_is_refused_also_inside_a_list(tmp_path):
    """A newline in a setup line would make two lines of the script, the second a command no one wrote."""
    spec, runs, sweep_dir = slurm_plan(tmp_path, 'slurm: {setup: ["module load cuda", "echo a\\nrm -rf x"]}\n')
    with pytest.raises(ValueError) as error:
        slurm_script(spec, runs, sweep_dir / "slurm", None)
    assert str(error.value).startswith("sweep 'slurm' section: setup='echo a\\nrm -rf x' holds a control character")
