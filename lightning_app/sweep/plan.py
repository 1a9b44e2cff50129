"""The sweep's plan: every grid point's run directory and state, before anything runs.

Each run's directory is computed by the CLI's own code (NormlabCLI's parser and
`before_instantiate_classes`, without building any model: cli_planner.py), so the plan names exactly
the directories `lightning fit` will write. That parser needs torch and Lightning imported (seconds);
its answers are kept between calls (run_name_cache.py), so planning runs it already named again, as
every `--dry-run` that checks on a sweep does, imports neither. A run whose `summary.json` says completed or exploded is skipped, and so
is a run another process holds (its lock, `lightning_app/run/lock.py`: shown as running elsewhere);
any other is launched, and the CLI resumes it from its newest checkpoint (`last.ckpt` or a SLURM
requeue's `hpc_ckpt_*.ckpt`) when one exists. Arguments after `--` are appended to every run (they
change the run names where they change the science).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from lightning_app.run.lock import holder_of
from lightning_app.run.paths import experiment_of, sweep_dir_of
from lightning_app.run.status import live_status, relaunch_status
from lightning_app.sweep.planned_run import PlannedRun
from lightning_app.sweep.run_name_cache import RunNameCache
from lightning_app.sweep.spec import SweepSpec, format_cli_value


def plan_sweep(spec: SweepSpec, extra: list[str] = ()) -> list[PlannedRun]:
    """The sweep's runs with their run directories and states; duplicates (same directory) dropped."""
    planner = None
    cache = RunNameCache.load()
    runs: list[PlannedRun] = []
    seen: set[Path] = set()
    duplicates = 0
    for point in spec.points():
        args = spec.run_args(point, extra)
        where = _describe(point) or "the base config"
        named = cache.get(args)
        if named is None:
            if planner is None:
                from lightning_app.sweep.cli_planner import RunPlanner  # torch and Lightning: only for new runs

                planner = RunPlanner(args, where)
            named = planner.name(args, point, where)
            cache.put(args, named)
        run_dir = named.run_dir
        if run_dir in seen:
            duplicates += 1
            continue
        seen.add(run_dir)
        status = live_status(relaunch_status(run_dir, named.test_after_fit), run_dir)
        runs.append(PlannedRun(len(runs), point, args, run_dir, status, holder_of(run_dir), named.accelerator,
                                named.devices))
    cache.save()
    if duplicates:
        print(f"normlab: {duplicates} grid point(s) name a run directory already planned (they differ only in "
              "values that do not change the run); each directory is run once", file=sys.stderr)
    return runs


def _describe(point: dict[str, Any]) -> str:
    return " ".join(f"{key}={format_cli_value(value)}" for key, value in point.items())


def sweep_dir(runs: list[PlannedRun]) -> Path:
    """`<root>/<experiment>/_sweep`: where the sweep keeps its logs and generated files."""
    return sweep_dir_of(runs[0].run_dir)


def print_plan(spec: SweepSpec, runs: list[PlannedRun]) -> None:
    counts = {action: sum(r.action == action for r in runs) for action in ("skip", "resume", "start")}
    elsewhere = sum(r.holder is not None for r in runs)
    where = experiment_of(runs[0].run_dir) if runs else "-"
    print(f"sweep {spec.experiment}: {len(runs)} runs in {where} ({counts['skip'] - elsewhere} finished, "
          + (f"{elsewhere} running elsewhere, " if elsewhere else "")
          + f"{counts['resume']} to resume, {counts['start']} to start)")
    for run in runs:
        state = f" [{run.state}]" if run.state else ""
        print(f"  {run.index:>3}  {run.action:<6} {run.run_dir.name}{state}  {_describe(run.point)}")
