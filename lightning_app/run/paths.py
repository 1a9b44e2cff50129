"""Where a run lives, and what may be created, resumed or deleted there: the one owner of the layout.

`<root>/<experiment>/<run_name>/`, each name a single path component (no `/`, not `.`/`..`, not
absolute, not hidden), checked before anything is created or deleted: a `/` would split one run over
two directories, `..` or an absolute path would point `--overwrite` at files outside any run. Names
(and the root) hold no control character: a name is also a W&B run name and a comment in a generated
SLURM script, where a newline would end the comment and start a command. A name longer than the file
system allows (NAME_MAX, in bytes of UTF-8: 255 on ext4, xfs, tmpfs) is refused before the first mkdir. A sweep
keeps its own files in `<root>/<experiment>/_sweep/`. Every name of a file or directory inside a run
is a constant here (the two that callbacks write, `summary.json` and `explosion.json`, are defined
beside their writers, which cannot import lightning_app); code that needs a run's
experiment directory, its root or the run directories under a root asks the functions below instead
of counting `parent`s.
"""
from __future__ import annotations

import os
import shutil
import unicodedata
from pathlib import Path

from callbacks.summary_file import SUMMARY_FILE

CHECKPOINT_DIR = "checkpoints"
LAST_CHECKPOINT = "last.ckpt"
HPC_CHECKPOINT_GLOB = "hpc_ckpt_*.ckpt"  # Lightning's SLURM requeue checkpoints, in the Trainer's root
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.csv"
LOCK_FILE = "run.lock"  # lock.py
EVAL_DIR = "eval"  # evaluation.py
PREDICTIONS_FILE = "predictions.csv"  # in a `predict` evaluation's directory
HPARAMS_FILE = "hparams.yaml"  # the model's hyper-parameters, beside metrics.csv (run_metrics.py)
SWEEP_DIR = "_sweep"  # beside the run directories: a sweep's logs, slurm script and W&B sweep file
# What only normlab writes into a run directory: one of them marks a directory --overwrite may empty.
RUN_MARKERS = (CONFIG_FILE, SUMMARY_FILE, METRICS_FILE, CHECKPOINT_DIR, LOCK_FILE)


# Unicode categories that break a line or control a terminal: C0/C1 controls, line and paragraph separators.
CONTROL_CATEGORIES = ("Cc", "Zl", "Zp")
SHOWN_CHARACTERS = 20  # of a name too long to print whole


def check_printable(option: str, value: str) -> str:
    """`value` if it holds no control character, else ValueError naming the option."""
    if any(unicodedata.category(c) in CONTROL_CATEGORIES for c in value):
        raise ValueError(f"{option}={value!r} holds a control character; names and paths become directories, W&B "
                         "names and lines of generated job scripts, so they must be printable")
    return value


def name_limit(root: str | os.PathLike | None) -> tuple[int, Path]:
    """The longest file name, in bytes, that the file system holding `root` takes (NAME_MAX), and the
    existing directory it was read from."""
    where = Path(root if root is not None else ".").absolute()
    where = next((p for p in (where, *where.parents) if p.is_dir()), Path("/"))
    try:
        return os.pathconf(where, "PC_NAME_MAX"), where
    except (OSError, ValueError):  # a file system that does not say: POSIX's common limit
        return 255, where


def check_name(option: str, name: str, root: str | os.PathLike | None = None) -> str:
    """`name` if it is one plain, printable path component that the file system of `root` can hold, else
    ValueError naming the option."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith(".") or "\0" in name:
        raise ValueError(f"{option}={name!r} must be a single directory name (no '/', not '.' or '..', "
                         "not starting with '.'); the run root is trainer.default_root_dir")
    check_printable(option, name)
    limit, where = name_limit(root)
    size = len(name.encode())
    if size > limit:
        shown = name if len(name) <= SHOWN_CHARACTERS else name[:SHOWN_CHARACTERS] + "…"
        raise ValueError(f"{option}={shown!r} ({len(name)} characters) is {size} bytes in UTF-8; the file system "
                         f"of {where} allows at most {limit} bytes per name")
    return name


def experiment_dir(root: str | os.PathLike, experiment: str) -> Path:
    """`<root>/<experiment>`, after checking the name."""
    return Path(root) / check_name("experiment", experiment, root)


def run_path(root: str | os.PathLike, experiment: str, run_name: str) -> Path:
    """`<root>/<experiment>/<run_name>`, after checking both names."""
    return experiment_dir(root, experiment) / check_name("run_name", run_name, root)


def layout_of(run_dir: str | os.PathLike) -> tuple[Path, Path, Path]:
    """(root, experiment directory, run directory) of a run directory, outermost first."""
    run_dir = Path(run_dir)
    return run_dir.parent.parent, run_dir.parent, run_dir


def experiment_of(run_dir: str | os.PathLike) -> Path:
    """The experiment directory that holds a run directory."""
    return layout_of(run_dir)[1]


def sweep_dir_of(run_dir: str | os.PathLike) -> Path:
    """`<root>/<experiment>/_sweep`, beside the run directory: where a sweep of that experiment keeps its files."""
    return experiment_of(run_dir) / SWEEP_DIR


def run_dirs(root: str | os.PathLike) -> list[Path]:
    """The run directories under a runs root (`<root>/<experiment>/<run>`, sweeps' own folders left out)."""
    return sorted(run for experiment in Path(root).iterdir() if experiment.is_dir()
                  for run in experiment.iterdir() if run.is_dir() and run.name != SWEEP_DIR)


def is_ckpt_path_keyword(ckpt_path: str | None) -> bool:
    """A `--ckpt_path` that names no file but a checkpoint to find: `last` (the run's newest, which `fit`
    and the evaluations resolve themselves), and Lightning's `best`, `hpc`, `registry[:...]`."""
    return isinstance(ckpt_path, str) and (ckpt_path in ("last", "best", "hpc")
                                           or ckpt_path.lower().split(":")[0] == "registry")


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
        read_only = os.statvfs(existing).f_flag & os.ST_RDONLY  # access() refuses these too, for another reason
        raise ValueError(f"cannot write to {existing} ({'read-only file system' if read_only else 'permission denied'}); "
                         f"{permission_fix}")


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
