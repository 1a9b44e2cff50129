"""Finished run directories, read back for the report: `config.yaml`, `summary.json`, `metrics.csv`.

Only the run directory is read (never W&B), so the report works offline and on a copied `runs/` tree.
`metrics.csv` is the CSV logger's file: columns `epoch`, `step` and one per metric key, rows sparse
(each logging call fills its own keys), so every key becomes its own series of (step, epoch, value).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from callbacks.run_files import read_json
from callbacks.run_summary import SUMMARY_FILE
from lightning_app.run.identity import data_name, get_dotted, science_config

# The axes a study varies, and where each lives in a resolved config.
AXES = {"norm": ("model", "norm"), "batch_size": ("data", "init_args", "batch_size"), "lr": ("model", "lr"),
        "seed": ("seed_everything",)}


@dataclass(frozen=True)
class Series:
    """One metric of one run, in logging order: the optimizer step, the epoch and the value of each row."""

    steps: np.ndarray
    epochs: np.ndarray
    values: np.ndarray


def read_metrics(path: Path) -> dict[str, Series]:
    """Every column of a CSV-logger `metrics.csv` as a Series over the rows where it has a value. A step
    logged twice (a resumed run repeats the steps after its last checkpoint) keeps its latest value."""
    if not path.is_file():
        return {}
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, dict[tuple[int, int], float]] = {}
    for row in rows:
        step = int(float(row.get("step") or 0))
        epoch = int(float(row.get("epoch") or 0))
        for key, text in row.items():
            if key not in ("step", "epoch") and text not in ("", None):
                columns.setdefault(key, {})[(step, epoch)] = float(text)
    series = {}
    for key, points in columns.items():
        ordered = sorted(points.items())
        series[key] = Series(np.array([s for (s, _), _ in ordered], dtype=np.int64),
                             np.array([e for (_, e), _ in ordered], dtype=np.int64),
                             np.array([v for _, v in ordered], dtype=np.float64))
    return series


@dataclass
class RunRecord:
    path: Path
    config: dict
    summary: dict

    @cached_property
    def metrics(self) -> dict[str, Series]:
        return read_metrics(self.path / "metrics.csv")

    @property
    def experiment(self) -> str:
        return self.config.get("experiment") or self.path.parent.name

    @property
    def name(self) -> str:
        return self.config.get("run_name") or self.path.name

    @property
    def status(self) -> str:
        return self.summary.get("status", "unknown")

    @property
    def dataset(self) -> str:
        return data_name(self.config.get("data"))

    @property
    def backbone(self) -> str:
        return str(get_dotted(self.config, ("model", "backbone")))

    def axis(self, name: str):
        """The value of a study axis (`norm`, `batch_size`, `lr`, `seed`)."""
        return get_dotted(self.config, AXES[name])

    def accuracy(self, metric: str) -> float | None:
        value = self.summary.get(metric)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None

    def context(self, *varying: str) -> str:
        """A key shared by exactly the runs that differ only along `varying` axes: the experiment and a
        hash of the science config (run/identity.py: what the run name's hash covers) without those axes."""
        science = science_config(self.config)  # a fresh copy: the axes can be removed from it
        for axis in varying:
            *parents, leaf = AXES[axis]
            holder = get_dotted(science, tuple(parents)) if parents else science
            if isinstance(holder, dict):
                holder.pop(leaf, None)
        digest = hashlib.sha1(json.dumps(science, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return f"{self.experiment}:{digest}"


def load_runs(root: Path) -> list[RunRecord]:
    """Every run directory under `root` (one holding summary.json and config.yaml), sorted by path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs directory {root} does not exist")
    runs = []
    for summary_path in sorted(root.rglob(SUMMARY_FILE)):
        config_path = summary_path.parent / "config.yaml"
        if config_path.is_file():
            runs.append(RunRecord(summary_path.parent, yaml.safe_load(config_path.read_text()) or {},
                                  read_json(summary_path)))
    if not runs:
        raise ValueError(f"no run directories (with summary.json and config.yaml) under {root}")
    return runs
