"""Where a run lives, and what may be created, resumed or deleted there.

`<root>/<experiment>/<run_name>/`, each name a single path component (no `/`, not `.`/`..`, not
absolute, not hidden), checked before anything is created or deleted: a `/` would split one run over
two directories, `..` or an absolute path would point `--overwrite` at files outside any run.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from callbacks.summary_file import SUMMARY_FILE

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
HPC_CHECKPOINT_GLOB = "hpc_ckpt_*.ckpt"  # Lightning's SLURM requeue checkpoints, in the Trainer's root
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
LOCK_FILE = "run.lock"  # lock.py
EVAL_DIR = "eval"  # evaluation.py
# What only normlab writes into a run directory: one of them marks a directory --overwrite may empty.
RUN_MARKERS = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, CHECKPOINT_DIR, LOCK_FILE)


def check_name(option: str, name: str) -> str:
    """`name` if it is one plain path component, else ValueError naming the option."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\0" in name:
        raise ValueError(f"{option}={name!r} must be a single directory name (no '/', not '.' or '..', "
                         "not starting with '.'); the run root is trainer.default_root_dir")
    return name


def run_path(root: str | os.PathLike, experiment: str, run_name: str) -> Path:
    """`<root>/<experiment>/<run_name>`, after checking both names."""
    return Path(root) / check_name("experiment", experiment) / check_name("run_name", run_name)


def default_experiment(config_paths: list) -> str:
    """The first config file's name without extension (`quickstart`), or `default` without one."""
    if not config_paths:
        return "default"
    return Path(str(config_paths[0])).stem


def resume_checkpoint(run_dir: Path) -> Path | None:
    """The newest of `checkpoints/last.ckpt` and Lightning's SLURM requeue checkpoints (saved on SIGUSR1
    in the run directory): a requeued job continues from the moment it was signalled."""
    candidates = [p for p in (run_dir / CHECKPOINT_DIR / LAST_CHECKPOINT, *run_dir.glob(HPC_CHECKPOINT_GLOB))
                  if p.is_file()]
    return max(candidates, key=lambda p: p.stat().st_mtime_ns, default=None)


def run_of_checkpoint(path: str | os.PathLike) -> Path | None:
    """The run directory a checkpoint was saved in (`<run>/checkpoints/*.ckpt` or `<run>/hpc_ckpt_*.ckpt`,
    beside its config.yaml), or None for a checkpoint that lives outside any run."""
    path = Path(path).resolve()
    for candidate in (path.parent.parent, path.parent) if path.parent.name == CHECKPOINT_DIR else (path.parent,):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return None


def is_run_dir(path: Path) -> bool:
    """A directory holding normlab's own run files (what --overwrite may empty)."""
    return path.is_dir() and any((path / name).exists() for name in RUN_MARKERS)


def check_writable(run_dir: Path) -> None:
    """Refuse, before training, what would otherwise fail at the first write: a root, experiment or run
    path that is a file, a `checkpoints` that is a file, a directory this user cannot write."""
    check_directory_target(run_dir / CHECKPOINT_DIR, "the run", "move it away or set trainer.default_root_dir / "
                           "--experiment / --run_name to write elsewhere",
                           "set trainer.default_root_dir to a directory you can write")


def check_directory_target(path: Path, writer: str, file_fix: str, permission_fix: str) -> None:
    """Refuse a directory that cannot be created or written, before anything is: `path` or one of its
    parents is a file (then it is the nearest existing path, since nothing exists below a file), or the
    nearest existing directory is not this user's to write."""
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"{existing} is a file, but {writer} needs a directory there; {file_fix}")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to {existing} (permission denied); {permission_fix}")


def check_overwritable(run_dir: Path) -> None:
    """--overwrite replaces a run, never anything else: a directory that holds files but none of
    normlab's run files is refused."""
    if run_dir.is_dir() and any(run_dir.iterdir()) and not is_run_dir(run_dir):
        raise ValueError(f"--overwrite: {run_dir} holds no normlab run (none of {', '.join(RUN_MARKERS)}); "
                         "refusing to delete it")


def clear_run_dir(run_dir: Path) -> None:
    """Empty a run directory for --overwrite, keeping only the lock file (this process holds it: a
    new file would let a second process lock it too)."""
    if not run_dir.is_dir():
        return
    check_overwritable(run_dir)
    for entry in run_dir.iterdir():
        if entry.name == LOCK_FILE:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
