"""An OS error during a run (a full disk, a read-only file system, a quota, an I/O error) ends it with one
line: the cause, the file, the run directory and what its `summary.json` says now.

`RunSummary` records `failed` with the error when it still can; on a full or read-only disk that write
may fail too, and the line then says that summary.json still says `running` (as after a kill: the same
command resumes it). Checkpoints are written atomically (`callbacks/run_files.py`), so the last whole
one is kept either way and the relaunch resumes from it once the file system takes writes again.
"""
from __future__ import annotations

import errno
from pathlib import Path

from callbacks.run_summary import RUNNING
from lightning_app.run.status import read_status

EXIT_CODE = 1  # the run failed; bad input (refused before anything ran) is 2


def describe_os_error(error: OSError) -> str:
    """`No space left on device: /runs/x/checkpoints/last.ckpt` (the file, when the error names one)."""
    cause = error.strerror or errno.errorcode.get(error.errno or 0, type(error).__name__)
    return f"{cause}: {error.filename}" if error.filename else cause


class RunFailed(Exception):
    """`fit_dir`: the run directory of a fit (an evaluation's results are simply not written)."""

    def __init__(self, error: OSError, fit_dir: Path | None):
        message = describe_os_error(error)
        if fit_dir is not None:
            try:
                status = read_status(fit_dir)
            except (OSError, ValueError):  # unreadable on the failing disk, or cut short
                status = None
            record = ("summary.json could not be written: it still says running" if status in (RUNNING, None)
                      else f"summary.json says {status}")
            message += (f"; run dir: {fit_dir}; {record}; the last whole checkpoint is kept: once the file system "
                        "takes writes again, relaunch the same command to resume")
        super().__init__(message)
