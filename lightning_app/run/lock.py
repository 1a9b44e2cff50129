"""One training process per run directory: an exclusive `fcntl.flock` on `<run>/run.lock`.

The kernel drops a flock when its process ends, however it ends (kill -9, OOM, a node's job killed by
SLURM before a requeue), so a lock is never stale and the relaunch or requeued job takes it again. The
holder writes its pid, host and start time into the file, so a second `fit` names who holds the run.
Under DDP the job holds one lock: the launching (global rank 0) process takes it before it starts the
other ranks, which do not lock (`is_launching_process`). On NFS, flock works where the mount supports
locks (Linux maps it to POSIX byte-range locks).

The file is never deleted while held (a new file at the same path would let a second process lock
it); a lock taken after the path was replaced is retried on the new file.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from datetime import datetime, timezone
from pathlib import Path

from lightning_app.run.paths import LOCK_FILE, layout_of

# Environment variables that give a process's rank under the launchers Lightning supports.
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


def is_launching_process() -> bool:
    """True in the process that launches a job (or the only one): every rank variable unset or 0."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def read_holder(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / LOCK_FILE).read_text() or "{}")
    except (OSError, ValueError):
        return {}


def describe_holder(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}, started {holder.get('started', '?')}"
            if holder else "another process")


class RunLocked(ValueError):
    """The run directory is locked by another live process."""

    def __init__(self, run_dir: Path, holder: dict):
        super().__init__(f"{run_dir} is in use by another training ({describe_holder(holder)}); wait for it to "
                         "end or stop it (a stopped process releases the run at once), or set --run_name / "
                         "--experiment to write elsewhere")
        self.holder = holder


def _try_flock(fd: int, operation: int, attempts: int = 5) -> bool:
    """flock without blocking; a few quick retries so that a probe's instant shared lock is not taken
    for a holder."""
    for attempt in range(attempts):
        try:
            fcntl.flock(fd, operation | fcntl.LOCK_NB)
            return True
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            if attempt + 1 < attempts:
                time.sleep(0.05)
    return False


def holder_of(run_dir: Path) -> dict | None:
    """Who holds the run's lock now (pid, host, started), or None when nobody does. Creates nothing."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if _try_flock(fd, fcntl.LOCK_SH, attempts=1):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        return read_holder(run_dir)
    finally:
        os.close(fd)


class RunLock:
    """`acquire()` creates the run directory (and its lock file) and locks it, or raises RunLocked;
    `release()` unlocks and removes what acquire created if nothing else was written there."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self._fd: int | None = None
        self._created: list[Path] = []  # directories acquire made, deepest last

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        missing = [p for p in layout_of(self.run_dir) if not p.exists()]  # root, experiment, run
        self._created = missing
        while True:
            self.run_dir.mkdir(parents=True, exist_ok=True)  # again after a release that removed it
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)  # 0o666: the umask decides, as for any file
            except PermissionError:
                self._remove_created()
                raise ValueError(f"cannot lock {self.path} (permission denied: another user's run?); set "
                                 "--run_name / --experiment to write elsewhere") from None
            if not _try_flock(fd, fcntl.LOCK_EX):
                os.close(fd)
                self._remove_created()
                raise RunLocked(self.run_dir, read_holder(self.run_dir))
            if os.path.exists(self.path) and os.stat(self.path).st_ino == os.fstat(fd).st_ino:
                break
            os.close(fd)  # the file was replaced between open and lock: lock the one at the path now
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.now(timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        if not [p for p in self.run_dir.iterdir() if p.name != LOCK_FILE]:
            self.path.unlink()  # while still held: nobody can have locked this file in the meantime
            self._remove_created()
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _remove_created(self) -> None:
        for directory in reversed(self._created):
            try:
                directory.rmdir()
            except OSError:  # something else was written there meanwhile: keep it
                break
        self._created = []
