"""`summary.json`'s `status`: its values (written by `callbacks/run_summary.py`) and what each means
for a relaunch. The one place `fit`, the sweep planner and the report learn which runs are done."""
from __future__ import annotations

import socket
from pathlib import Path

from callbacks.run_files import read_json
from callbacks.summary_file import COMPLETED, EXPLODED, FAILED, INTERRUPTED, RUNNING, SUMMARY_FILE
from lightning_app.run.lock import holder_of, read_holder
from lightning_app.run.paths import resume_checkpoint

STATUSES = (COMPLETED, EXPLODED, FAILED, INTERRUPTED, RUNNING)
# A finished run is refused by `fit` without --overwrite and skipped by a sweep; every other status resumes.
FINISHED = (COMPLETED, EXPLODED)
# Never written: what `live_status` calls a run whose summary.json still says running after its process
# died (SIGKILL, out of memory) without the chance to write a last status. It resumes like RUNNING.
KILLED = "killed"
# Never written: what `relaunch_status` calls a completed run whose final test is missing (Ctrl-C or a kill
# during it) when the relaunch asks for that test. It resumes: its last checkpoint is the end of training,
# so nothing is trained again, and the test runs.
UNTESTED = "untested"


def read_status(run_dir: str | Path) -> str | None:
    """The run's status, None when it never wrote a summary; a corrupt summary.json is a ValueError."""
    path = Path(run_dir) / SUMMARY_FILE
    return read_json(path).get("status") if path.is_file() else None


def relaunch_status(run_dir: str | Path, test_after_fit: bool) -> str | None:
    """`read_status`, except that a completed run without its final test result is UNTESTED when the
    relaunch asks for the test and the run has a checkpoint to test (else it stays completed)."""
    path = Path(run_dir) / SUMMARY_FILE
    summary = read_json(path) if path.is_file() else {}
    status = summary.get("status")
    if status == COMPLETED and test_after_fit and summary.get("test_acc") is None \
            and resume_checkpoint(Path(run_dir)) is not None:
        return UNTESTED
    return status


def live_status(status: str | None, run_dir: str | Path) -> str | None:
    """`status` as read from the run's summary.json, with RUNNING checked against the run's lock: on the
    host that last held it, a free lock means the process is gone (the kernel frees a lock on any death),
    so the run was killed. A run last held on another host, or with no lock file (a copied `runs/` tree),
    keeps RUNNING: a lock says nothing across machines that do not share it."""
    if status != RUNNING or holder_of(Path(run_dir)) is not None:
        return status
    return KILLED if read_holder(Path(run_dir)).get("host") == socket.gethostname() else status
