"""The sweep's plan: every grid point's run directory and state, before anything runs.

Each run's directory is computed by the CLI's own code (NormlabCLI's parser and
`before_instantiate_classes`, without building any model), so the plan names exactly the directories
`lightning fit` will write. A run whose `summary.json` says completed or exploded is skipped, and so
is a run another process holds (its lock, `lightning_app/run/lock.py`: shown as running elsewhere);
any other is launched, and the CLI resumes it from its newest checkpoint (`last.ckpt` or a SLURM
requeue's `hpc_ckpt_*.ckpt`) when one exists. Arguments after `--` are appended to every run (they
change the run names where they change the science).
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any

from callbacks.compat import UnseededCLI
from lightning_app.cli import NormlabCLI
from lightning_app.run.lock import holder_of
from lightning_app.run.paths import experiment_of, sweep_dir_of
from lightning_app.run.status import live_status, relaunch_status
from lightning_app.sweep.planned_run import PlannedRun
from lightning_app.sweep.spec import SweepSpec, format_cli_value

ARGS_AND_ARGV_WARNING = "LightningCLI's args parameter is intended to run from within Python"


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
        status = live_status(relaunch_status(run_dir, planner.test_after_fit()), run_dir)
        runs.append(PlannedRun(len(runs), point, args, run_dir, status, holder_of(run_dir),
                                *planner.devices_of()))
    if duplicates:
        print(f"normlab: {duplicates} grid point(s) name a run directory already planned (they differ only in "
              "values that do not change the run); each directory is run once", file=sys.stderr)
    return runs


class _RunPlanner(UnseededCLI, NormlabCLI):
    """NormlabCLI's parser and run naming, without instantiating a model, a data module or a trainer.

    Built once (building the parser is the slow part); each run is then one parse plus the CLI's own
    `before_instantiate_classes`, which fills in `experiment` and `run_name` and sets `run_dir`. It
    seeds nothing: seeding belongs to the training processes.
    """

    def __init__(self, first_args: list[str], where: str):
        self._where = where
        super().__init__(args=first_args, run=False)

    def init_parser(self, **kwargs):
        parser = super().init_parser(**kwargs)
        parser.exit_on_error = False  # raise, so the sweep can name the run whose arguments are bad
        return parser

    def parse_arguments(self, parser, args) -> None:
        try:  # the CLI's own parse: its one-line explanation of a bad key or value
            with warnings.catch_warnings():
                # LightningCLI warns when both `args` and sys.argv are given, a mistake in a script; passing each
                # run's arguments while `lightning sweep ...` is sys.argv is what the planner is for
                warnings.filterwarnings("ignore", message=ARGS_AND_ARGV_WARNING)
                super().parse_arguments(parser, args)
        except ValueError as error:
            raise ValueError(f"sweep run ({self._where}): {error}") from None

    def instantiate_classes(self) -> None:
        pass

    def run_dir_of(self, args: list[str], point: dict[str, Any], where: str) -> Path:
        self._where = where
        self.parse_arguments(self.parser, args)
        seed = self.config.get("seed_everything")
        if isinstance(seed, bool):
            raise ValueError(f"sweep run ({where}): seed_everything={seed!r} gives no reproducible run name; "
                             "set an integer, or list them under 'seeds'")
        for key, value in point.items():  # the value must survive the trip through the command line
            parsed = self.config.get(key)
            if isinstance(value, (str, int, float, bool, type(None))) and parsed != value \
                    and not _same_count(value, parsed):
                raise ValueError(f"sweep run ({where}): {key} was given {value!r} but the CLI parsed {parsed!r}")
        self.before_instantiate_classes()
        return self.run_dir

    def test_after_fit(self) -> bool:
        """Whether the last parsed run tests after fit (a completed run without its test is then resumed)."""
        return bool(self.config.get("test_after_fit"))

    def devices_of(self) -> tuple[str, Any]:
        """The last parsed run's trainer.accelerator and trainer.devices."""
        return str(self.config.get("trainer.accelerator") or "auto"), self.config.get("trainer.devices")


def _same_count(value: Any, parsed: Any) -> bool:
    """An integer that the CLI kept as its text: `trainer.devices` (and `precision`) accept a str before an
    int, so `--trainer.devices 2` parses to '2', which Lightning reads as the count 2."""
    return isinstance(value, int) and not isinstance(value, bool) and parsed == str(value)


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
