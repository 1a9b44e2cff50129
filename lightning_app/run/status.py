"""`summary.json`'s `status`: its values (written by `callbacks/run_summary.py`) and what each means
for a relaunch. The one place `fit`, the sweep planner and the report learn which runs are done."""
from __future__ import annotations

from pathlib import Path

from callbacks.run_files import read_json
from callbacks.run_summary import COMPLETED, EXPLODED, FAILED, INTERRUPTED, RUNNING, SUMMARY_FILE

STATUSES = (COMPLETED, EXPLODED, FAILED, INTERRUPTED, RUNNING)
# A finished run is refused by `fit` without --overwrite and skipped by a sweep; the others resume.
FINISHED = (COMPLETED, EXPLODED)
RESUMABLE = (RUNNING, FAILED, INTERRUPTED)  # RUNNING on disk: the process was killed (or still holds the lock)


def read_status(run_dir: str | Path) -> str | None:
    """The run's status, None when it never wrote a summary; a corrupt summary.json is a ValueError."""
    path = Path(run_dir) / SUMMARY_FILE
    return read_json(path).get("status") if path.is_file() else None
