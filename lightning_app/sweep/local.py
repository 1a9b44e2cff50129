"""`lightning sweep --launcher local`: each unfinished run as its own `python -m lightning_app fit`
subprocess, so a crash does not end the sweep.

One after another, or `--parallel N` at once, one visible GPU each, or without GPUs each its share of
the CPU cores (OMP_NUM_THREADS = cores // N). Ctrl-C (or SIGTERM) passes one SIGINT to the running
trainings, which stop the way Lightning stops on Ctrl-C (one still running 2 minutes later is killed);
their last checkpoints stay, and the same command resumes them. A training cannot outlive the sweep:
should the sweep die without that chance (SIGKILL), the kernel sends each training SIGTERM
(`parent_death.py`), so a relaunch never finds a second writer in the run directory.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from callbacks.run_files import read_json
from callbacks.summary_file import SUMMARY_FILE
from lightning_app.run.lock import describe_holder, holder_of
from lightning_app.run.status import FINISHED, read_status
from lightning_app.sweep.parent_death import die_with_parent
from lightning_app.sweep.planned_run import PlannedRun


REFUSED_EXIT_CODE = 2  # `fit` refusing its input, a run held by another process or already finished included


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
    outcomes: dict[str, list[PlannedRun]] = {"finished": [], "skipped": [], "failed": []}
    total, started = len(todo), 0
    previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        while todo or running:
            for slot in range(parallel):
                while slot not in running and todo:
                    run = todo.pop(0)
                    started += 1
                    taken = taken_elsewhere(run)  # since the plan, by another sweep
                    if taken:
                        print(f"sweep: [{started}/{total}] skipped ({taken}) {run.run_dir}", flush=True)
                        outcomes["skipped"].append(run)
                        continue
                    running[slot] = _start(run, gpus[slot] if gpus else None, log_dir if parallel > 1 else None,
                                           None if gpus else cpu_threads(parallel))
                    print(f"sweep: [{started}/{total}] {run.action} "
                          f"{run.run_dir}" + (f" (GPU {gpus[slot]})" if gpus else ""), flush=True)
            time.sleep(poll_seconds if running else 0)
            for slot, (process, run, log) in list(running.items()):
                if process.poll() is not None:
                    del running[slot]
                    if log:
                        log.close()
                    outcomes[_report(run, process.returncode, log)].append(run)
    except KeyboardInterrupt:
        _stop(running)
        print(f"sweep: interrupted; {len(running)} run(s) stopped, {len(todo)} not started. Run the same command "
              "again to resume.", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous_sigterm)
    if outcomes["failed"]:
        print(f"sweep: {len(outcomes['failed'])} run(s) failed: " + ", ".join(str(r.run_dir) for r in outcomes["failed"]),
              file=sys.stderr)
        return 1
    if outcomes["skipped"]:
        print(f"sweep: {len(outcomes['finished'])} runs finished here, {len(outcomes['skipped'])} skipped (finished or "
              "running elsewhere)")
    else:
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


def taken_elsewhere(run: PlannedRun) -> str | None:
    """Why another process has the run now (another sweep of the same file finished it, or trains it), or None."""
    holder = holder_of(run.run_dir)
    if holder is not None:
        return f"running elsewhere: {describe_holder(holder)}"
    status = read_status(run.run_dir)
    return f"{status} by another process" if status in FINISHED else None


def launch_outcome(run: PlannedRun, returncode: int) -> tuple[str, str]:
    """("finished" | "skipped" | "failed", what to show) for a training that exited with `returncode`. A
    training refused (exit 2) because another process took the run after it was started, and holds it or
    finished it, was skipped; any other non-zero exit failed."""
    summary_path = run.run_dir / SUMMARY_FILE
    summary = read_json(summary_path) if summary_path.is_file() else {}
    status = summary.get("status", "failed")
    if returncode == 0 and status in FINISHED:
        return "finished", status
    taken = taken_elsewhere(run) if returncode == REFUSED_EXIT_CODE else None
    return ("skipped", taken) if taken else ("failed", status)


def _report(run: PlannedRun, returncode: int, log) -> str:
    outcome, status = launch_outcome(run, returncode)
    test = read_json(run.run_dir / SUMMARY_FILE).get("test_acc") if outcome == "finished" else None
    where = f"; log: {log.name}" if log else ""
    shown = f"skipped ({status})" if outcome == "skipped" else status
    print(f"sweep: {shown} (exit {returncode}) {run.run_dir}"
          + (f" | test/acc {test:.4f}" if isinstance(test, float) else "") + where, flush=True)
    return outcome


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
