"""`lightning sweep`: expand a sweep file into runs, print the plan, run what is not finished.

    lightning sweep --config configs/sweeps/X.yaml [--dry-run] [--launcher local|slurm|wandb]
                    [--parallel N] [-- --trainer.max_epochs 1 ...]

Each run's directory is computed by the CLI's own code (NormlabCLI's parser and
`before_instantiate_classes`, without building any model), so the plan names exactly the directories
`lightning fit` will write. A run whose `summary.json` says completed or exploded is skipped, and so
is a run another process holds (its lock, `lightning_app/run/lock.py`: shown as running elsewhere);
any other is launched, and the CLI resumes it from its newest checkpoint (`last.ckpt` or a SLURM
requeue's `hpc_ckpt_*.ckpt`) when one exists. Arguments
after `--` are appended to every run (they change the run names where they change the science).

`--launcher local` runs each run as its own `python -m lightning_app fit ...` subprocess (a crash
does not end the sweep): one after another, or `--parallel N` at once, one visible GPU each, or
without GPUs each its share of the CPU cores (OMP_NUM_THREADS = cores // N). Ctrl-C (or SIGTERM)
passes one SIGINT to the running trainings, which stop the way Lightning stops on Ctrl-C; their last
checkpoints stay, and the same command resumes them. A training cannot outlive the sweep: should the
sweep die without that chance (SIGKILL), the kernel sends each training SIGTERM (parent-death
signal), so a relaunch never finds a second writer in the run directory. `--launcher slurm|wandb`
write a job-array script or a W&B sweep file instead (`sweep_export.py`).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jsonargparse import ArgumentError

from callbacks.run_files import read_json
from callbacks.run_summary import SUMMARY_FILE
from lightning_app.cli import NormlabCLI
from lightning_app.run.lock import holder_of
from lightning_app.run.status import FINISHED, read_status
from lightning_app.parent_death import die_with_parent
from lightning_app.planned_run import PlannedRun
from lightning_app.sweep_spec import SweepSpec, format_cli_value, load_sweep

SWEEP_DIR = "_sweep"  # beside the run directories: logs, the slurm script, the W&B sweep file


def plan_sweep(spec: SweepSpec, extra: list[str] = ()) -> list[PlannedRun]:
    """The sweep's runs with their run directories and states; duplicates (same directory) dropped."""
    planner: _RunPlanner | None = None
    runs: list[PlannedRun] = []
    seen: set[Path] = set()
    duplicates = 0
    for point in spec.points():
        args = spec.run_args(point, extra)
        where = _describe(point) or "the base config"
        planner = planner or _RunPlanner(args, where)
        run_dir = planner.run_dir_of(args, point, where)
        if run_dir in seen:
            duplicates += 1
            continue
        seen.add(run_dir)
        runs.append(PlannedRun(len(runs), point, args, run_dir, read_status(run_dir), holder_of(run_dir),
                                *planner.devices_of()))
    if duplicates:
        print(f"normlab: {duplicates} grid point(s) name a run directory already planned (they differ only in "
              "values that do not change the run); each directory is run once", file=sys.stderr)
    return runs


class _RunPlanner(NormlabCLI):
    """NormlabCLI's parser and run naming, without instantiating a model, a data module or a trainer.

    Built once (building the parser is the slow part); each run is then one parse plus the CLI's own
    `before_instantiate_classes`, which fills in `experiment` and `run_name` and sets `run_dir`.
    """

    def __init__(self, first_args: list[str], where: str):
        self._where = where
        super().__init__(args=first_args, run=False)

    def init_parser(self, **kwargs):
        parser = super().init_parser(**kwargs)
        parser.exit_on_error = False  # raise, so the sweep can name the run whose arguments are bad
        return parser

    def parse_arguments(self, parser, args) -> None:
        self.config = self._parse(parser, args, self._where)

    def _set_seed(self) -> None:
        pass  # seeding belongs to the training processes

    def instantiate_classes(self) -> None:
        pass

    @staticmethod
    def _parse(parser, args, where: str):
        try:
            return parser.parse_args(args)
        except ArgumentError as error:
            raise ValueError(f"sweep run ({where}): {' '.join(str(error).split())}") from None

    def run_dir_of(self, args: list[str], point: dict[str, Any], where: str) -> Path:
        self.config = self._parse(self.parser, args, where)
        seed = self.config.get("seed_everything")
        if isinstance(seed, bool):
            raise ValueError(f"sweep run ({where}): seed_everything={seed!r} gives no reproducible run name; "
                             "set an integer, or list them under 'seeds'")
        for key, value in point.items():  # the value must survive the trip through the command line
            parsed = self.config.get(key)
            if isinstance(value, (str, int, float, bool, type(None))) and parsed != value:
                raise ValueError(f"sweep run ({where}): {key} was given {value!r} but the CLI parsed {parsed!r}")
        self.before_instantiate_classes()
        return self.run_dir

    def devices_of(self) -> tuple[str, Any]:
        """The last parsed run's trainer.accelerator and trainer.devices."""
        return str(self.config.get("trainer.accelerator") or "auto"), self.config.get("trainer.devices")


def _describe(point: dict[str, Any]) -> str:
    return " ".join(f"{key}={format_cli_value(value)}" for key, value in point.items())


def sweep_dir(runs: list[PlannedRun]) -> Path:
    """`<root>/<experiment>/_sweep`: where the sweep keeps its logs and generated files."""
    return runs[0].run_dir.parent / SWEEP_DIR


def print_plan(spec: SweepSpec, runs: list[PlannedRun]) -> None:
    counts = {action: sum(r.action == action for r in runs) for action in ("skip", "resume", "start")}
    elsewhere = sum(r.holder is not None for r in runs)
    where = runs[0].run_dir.parent if runs else "-"
    print(f"sweep {spec.experiment}: {len(runs)} runs in {where} ({counts['skip'] - elsewhere} finished, "
          + (f"{elsewhere} running elsewhere, " if elsewhere else "")
          + f"{counts['resume']} to resume, {counts['start']} to start)")
    for run in runs:
        state = f" [{run.state}]" if run.state else ""
        print(f"  {run.index:>3}  {run.action:<6} {run.run_dir.name}{state}  {_describe(run.point)}")


# -- local launcher ------------------------------------------------------------------------------------
def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def visible_gpus() -> list[str]:
    """The GPU ids this process may use: CUDA_VISIBLE_DEVICES when set, else every CUDA device."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip() and gpu.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


def run_local(runs: list[PlannedRun], parallel: int, log_dir: Path, poll_seconds: float = 0.2) -> int:
    """Run the unfinished runs as subprocesses; 0 when all end finished, 1 if any failed, 130 on Ctrl-C."""
    todo = [run for run in runs if run.action != "skip"]
    gpus = visible_gpus() if parallel > 1 else []
    if gpus and parallel > len(gpus):
        raise ValueError(f"--parallel {parallel} needs {parallel} GPUs, {len(gpus)} are visible ({','.join(gpus)}); "
                         f"use --parallel {len(gpus)} or fewer")
    if parallel > 1:
        log_dir.mkdir(parents=True, exist_ok=True)
    running: dict[int, tuple[subprocess.Popen, PlannedRun, Any]] = {}  # slot -> (process, run, log file)
    failed: list[PlannedRun] = []
    total, started = len(todo), 0
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while todo or running:
            for slot in range(parallel):
                if slot not in running and todo:
                    run = todo.pop(0)
                    running[slot] = _start(run, gpus[slot] if gpus else None, log_dir if parallel > 1 else None,
                                           None if gpus else cpu_threads(parallel))
                    started += 1
                    print(f"sweep: [{started}/{total}] {run.action} "
                          f"{run.run_dir}" + (f" (GPU {gpus[slot]})" if gpus else ""), flush=True)
            time.sleep(poll_seconds if running else 0)
            for slot, (process, run, log) in list(running.items()):
                if process.poll() is not None:
                    del running[slot]
                    if log:
                        log.close()
                    if not _report(run, process.returncode, log):
                        failed.append(run)
    except KeyboardInterrupt:
        _stop(running)
        print(f"sweep: interrupted; {len(running)} run(s) stopped, {len(todo)} not started. Run the same command "
              "again to resume.", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    if failed:
        print(f"sweep: {len(failed)} run(s) failed: " + ", ".join(str(r.run_dir) for r in failed), file=sys.stderr)
        return 1
    print(f"sweep: all {len(runs)} runs finished")
    return 0


def cpu_threads(parallel: int) -> int | None:
    """Threads per run when `parallel` runs share the CPU: its share of the cores (None: all, torch's
    default, for a single run; or the user's own OMP_NUM_THREADS)."""
    if parallel == 1 or os.environ.get("OMP_NUM_THREADS"):
        return None
    return max(1, len(os.sched_getaffinity(0)) // parallel)


def _start(run: PlannedRun, gpu: str | None, log_dir: Path | None, threads: int | None = None):
    env = dict(os.environ)
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    log = open(log_dir / f"{run.run_dir.name}.log", "a") if log_dir else None
    # Its own session: a terminal's Ctrl-C reaches only the sweep, which passes exactly one SIGINT on.
    process = subprocess.Popen([sys.executable, "-m", "lightning_app", "fit", *run.args], env=env,
                               stdout=log, stderr=subprocess.STDOUT if log else None, start_new_session=True,
                               preexec_fn=_training_preexec())
    return process, run, log


def _training_preexec():
    """What a training runs between fork and exec: SIGINT back to its default, then the parent-death signal.

    A sweep started in the background (`cmd &`, `nohup`) has SIGINT ignored, an ignored signal survives
    exec, and Python installs no KeyboardInterrupt handler for it: the one SIGINT `_stop` sends would
    then never reach the training."""
    arm = die_with_parent()

    def preexec() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if arm is not None:
            arm()

    return preexec


def _report(run: PlannedRun, returncode: int, log) -> bool:
    summary_path = run.run_dir / SUMMARY_FILE
    summary = read_json(summary_path) if summary_path.is_file() else {}
    status = summary.get("status", "failed")
    test = summary.get("test_acc")
    where = f"; log: {log.name}" if log else ""
    print(f"sweep: {status} (exit {returncode}) {run.run_dir}"
          + (f" | test/acc {test:.4f}" if isinstance(test, float) else "") + where, flush=True)
    return status in FINISHED and returncode == 0


def _stop(running: dict, grace_seconds: float = 120.0) -> None:
    """One SIGINT to each training (Lightning's graceful stop), then wait; kill only what hangs."""
    for process, _, _ in running.values():
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    deadline = time.monotonic() + grace_seconds
    for process, _, log in running.values():
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if log:
            log.close()


# -- command line --------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightning sweep", description="Expand a sweep file into runs and run those not finished.",
        epilog="Arguments after `--` are appended to every run, e.g. `-- --trainer.max_epochs 1`.")
    parser.add_argument("--config", required=True, help="the sweep file (configs/sweeps/*.yaml)")
    parser.add_argument("--launcher", choices=("local", "slurm", "wandb"), default="local")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and stop")
    parser.add_argument("--parallel", type=int, default=1,
                        help="local launcher: runs at once (default 1), each pinned to its own visible GPU when there are "
                             "GPUs; without GPUs they share the CPU")
    return parser


def main(argv: list[str]) -> None:
    argv = list(argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    options = build_parser().parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    try:
        sys.exit(_sweep(options, extra))
    except (ValueError, FileNotFoundError) as error:
        if os.environ.get("NORMLAB_DEBUG"):
            raise
        print(f"normlab: error: {' '.join(str(error).split())}", file=sys.stderr)
        sys.exit(2)


def _sweep(options: argparse.Namespace, extra: list[str]) -> int:
    if options.parallel < 1:
        raise ValueError(f"--parallel must be >= 1, got {options.parallel}")
    spec = load_sweep(options.config)
    runs = plan_sweep(spec, extra)
    print_plan(spec, runs)
    if options.dry_run:
        return 0
    if options.launcher == "slurm":
        from lightning_app.sweep_export import submit_slurm

        return submit_slurm(spec, runs, sweep_dir(runs))
    if options.launcher == "wandb":
        from lightning_app.sweep_export import write_wandb_sweep

        write_wandb_sweep(spec, runs, sweep_dir(runs), extra)
        return 0
    return run_local(runs, options.parallel, sweep_dir(runs) / "logs")
