"""`PlannedRun`: one run of a sweep as the planner sees it (its grid point, `fit` arguments, directory
and state). Its own module because both the planner (`plan.py`) and the launchers that export a plan
(`local.py`, `export.py`: SLURM array, W&B sweep) use it, and neither should import the other for it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning_app.run.lock import describe_holder
from lightning_app.run.paths import resume_checkpoint
from lightning_app.run.status import FINISHED


@dataclass
class PlannedRun:
    index: int
    point: dict[str, Any]  # the grid values of this run (dotted key -> value)
    args: list[str]  # the `fit` arguments
    run_dir: Path
    status: str | None  # summary.json's status, None when the run never started
    holder: dict | None = None  # the process holding the run's lock (running elsewhere), None when free
    accelerator: str = "auto"  # trainer.accelerator and trainer.devices: what a launcher must provide
    devices: Any = 1

    @property
    def action(self) -> str:
        if self.status in FINISHED or self.holder is not None:
            return "skip"
        return "resume" if resume_checkpoint(self.run_dir) is not None else "start"

    @property
    def state(self) -> str:
        if self.holder is not None:
            return f"running elsewhere: {describe_holder(self.holder)}"
        return self.status or ""
