"""`RunPlanner`: NormlabCLI's parser and run naming for the sweep planner (plan.py), without training.

Its own module because it imports the CLI, hence torch and Lightning: plan.py loads it only for runs
that the run-name cache (run_name_cache.py) does not know yet.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from callbacks.compat import ARGS_BESIDE_ARGV_WARNING, UnseededCLI
from lightning_app.cli import NormlabCLI
from lightning_app.sweep.run_name_cache import NamedRun


class RunPlanner(UnseededCLI, NormlabCLI):
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
                # Each planned run's arguments are meant to differ from `lightning sweep`'s own: Lightning's
                # warning about args beside sys.argv would print once per run. Only that one is silenced.
                warnings.filterwarnings("ignore", message=ARGS_BESIDE_ARGV_WARNING, category=UserWarning)
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

    def devices_of(self) -> tuple[str, Any]:
        """The last parsed run's trainer.accelerator and trainer.devices."""
        return str(self.config.get("trainer.accelerator") or "auto"), self.config.get("trainer.devices")

    def name(self, args: list[str], point: dict[str, Any], where: str) -> NamedRun:
        """The run's directory and what its launcher must provide."""
        run_dir = self.run_dir_of(args, point, where)
        return NamedRun(run_dir, *self.devices_of(), bool(self.config.get("test_after_fit")))


def _same_count(value: Any, parsed: Any) -> bool:
    """An integer that the CLI kept as its text: `trainer.devices` (and `precision`) accept a str before an
    int, so `--trainer.devices 2` parses to '2', which Lightning reads as the count 2."""
    return isinstance(value, int) and not isinstance(value, bool) and parsed == str(value)
