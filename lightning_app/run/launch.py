"""Bringing a run directory into use: the checks `fit` makes before anything is created, then the lock.

Order, so that bad input never changes a byte on disk: names and the run name (`paths.py`,
`resolve_run_name`, before the model is built); after the model, data and trainer are built and
their values checked, the run's identity (`check_checkpoint_origin`, `check_run_identity`) and what
is on disk (`check_fit_target`); only then `take_run_dir` locks the directory, looks again under the
lock and, for --overwrite, empties it.

A run is what its directory says it is:
- the run name ends in a hash of the science (`identity.py`); a relaunch whose science differs from
  the config.yaml on disk never resumes that run. When the name was derived from the science (the
  saved `run_name` is what the saved config derives to, as when relaunching `<run>/config.yaml` with
  a changed value) the new science gets its own, newly derived, directory; a `--run_name` given by
  hand is refused, naming the first difference.
- a `--ckpt_path` saved in a run directory (beside its config.yaml) must come from the same science,
  or it is refused naming the first difference (a checkpoint of the same architecture trained on
  another data set would otherwise resume silently). A checkpoint outside any run directory carries
  no config to compare: only its tensors are checked (`lightning_app/checkpoints.py`).
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

from lightning_app.run.identity import derive_run_name, science_difference
from lightning_app.run.lock import RunLock, RunLocked, holder_of, is_launching_process
from lightning_app.run.paths import (CONFIG_FILE, METRICS_FILE, check_overwritable, check_writable, clear_run_dir,
                                     is_ckpt_path_keyword, resume_checkpoint, run_of_checkpoint, run_path)
from lightning_app.run.status import FINISHED, relaunch_status
from lightning_app.run.metrics_rows import read_previous_rows


def read_config(run_dir: Path) -> dict | None:
    """The run's saved config.yaml, None when it has none; an unreadable one is a ValueError naming it."""
    path = run_dir / CONFIG_FILE
    if not path.is_file():
        return None
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ValueError(f"{path} is corrupt ({' '.join(str(error).split())[:200]}); "
                         "delete the run directory to start over") from None
    return config if isinstance(config, dict) else None


def resolve_run_name(root: Path, experiment: str, given: str | None, launched: dict) -> str:
    """The run name for the launched config: derived from its science when none is given, or when the
    one given is the derived name of a run of other science (the saved config relaunched with a changed
    value); else the one given (`check_run_identity` refuses it later if its science differs)."""
    derived = derive_run_name(launched)
    if not given:
        return derived
    on_disk = read_config(run_path(root, experiment, given))
    difference = science_difference(on_disk, launched) if on_disk is not None else None
    if difference is not None and given == derive_run_name(on_disk):
        print(f"normlab: the config differs from the run {given} ({difference}); this is a new run: {derived}",
              file=sys.stderr)
        return derived
    return given


def check_run_identity(run_dir: Path, launched: dict, overwrite: bool) -> None:
    """Refuse to continue a run (named by hand) under other science; --overwrite replaces it instead."""
    on_disk = read_config(run_dir)
    difference = science_difference(on_disk, launched) if on_disk is not None else None
    if difference is not None and not overwrite:
        raise ValueError(f"run_name={run_dir.name!r} names a run of other science ({difference}); resuming it "
                         "with these values would mix two runs. Use another --run_name, or --overwrite true to "
                         "replace it")


def check_checkpoint_origin(ckpt_path: str | None, launched: dict) -> None:
    """Refuse a checkpoint saved by a run of other science (see the module docstring)."""
    if not ckpt_path or is_ckpt_path_keyword(ckpt_path) or not Path(ckpt_path).is_file():
        return
    origin = run_of_checkpoint(ckpt_path)
    on_disk = read_config(origin) if origin is not None else None
    difference = science_difference(on_disk, launched) if on_disk is not None else None
    if difference is not None:
        raise ValueError(f"checkpoint {ckpt_path} comes from the run {origin}, whose science differs "
                         f"({difference}); resume it with its own config ({origin / CONFIG_FILE}), or train "
                         "from scratch")


def check_fit_target(run_dir: Path, overwrite: bool, ckpt_path: str | None, test_after_fit: bool = False) -> None:
    """The run directory can take this fit: bad input is refused before anything is created."""
    check_writable(run_dir)
    status = relaunch_status(run_dir, test_after_fit)
    if status in FINISHED and not overwrite:
        raise ValueError(f"{run_dir} already holds a {status} run; pass --overwrite true to replace it, "
                         "or set --run_name / --experiment to write elsewhere")
    if is_launching_process():  # the other ranks of a DDP job start while their rank 0 holds the lock
        holder = holder_of(run_dir)
        if holder is not None:
            raise RunLocked(run_dir, holder)
    if not overwrite and (run_dir / METRICS_FILE).is_file():
        read_previous_rows(run_dir / METRICS_FILE)  # the resumed run appends to it: it must be one
    if overwrite:
        check_overwritable(run_dir)
        if ckpt_path and Path(ckpt_path).resolve().is_relative_to(run_dir.resolve()):
            raise ValueError(f"--overwrite true would delete the checkpoint --ckpt_path names ({ckpt_path}); "
                             "copy it elsewhere first, or drop --overwrite to resume")


def take_run_dir(run_dir: Path, overwrite: bool, test_after_fit: bool = False) -> RunLock:
    """Lock the run directory for this job (launching process only), check again under the lock what
    another process may have changed since `check_fit_target`, and empty it for --overwrite."""
    lock = RunLock(run_dir)
    if not is_launching_process():
        return lock
    lock.acquire()
    try:
        status = relaunch_status(run_dir, test_after_fit)
        if status in FINISHED and not overwrite:
            raise ValueError(f"{run_dir} already holds a {status} run (finished while this one started); "
                             "pass --overwrite true to replace it")
        if overwrite:
            clear_run_dir(run_dir)
    except BaseException:
        lock.release()
        raise
    return lock


def fit_resume_checkpoint(run_dir: Path, overwrite: bool, ckpt_path: str | None,
                          test_after_fit: bool) -> Path | None:
    """The checkpoint a relaunch continues from: none after --overwrite or with an explicit --ckpt_path,
    none for a finished run, else the newest of last.ckpt and the SLURM requeue checkpoints (for a run
    whose final test is missing, the end of its training)."""
    if overwrite or ckpt_path is not None or relaunch_status(run_dir, test_after_fit) in FINISHED:
        return None
    return resume_checkpoint(run_dir)


def eval_run_dir(root: Path, experiment: str, run_name: str, ckpt_path: str | None) -> Path:
    """The run an evaluation belongs to: the one its checkpoint was saved in, else the one the config names."""
    origin = run_of_checkpoint(ckpt_path) if ckpt_path and Path(ckpt_path).is_file() else None
    return origin if origin is not None else run_path(root, experiment, run_name)
