"""Finished run directories, read back for the report: `config.yaml`, `summary.json`, `metrics.csv` and,
where the activation statistics ran, `activation_histograms.jsonl`.

Only the run directory is read (never W&B), so the report works offline and on a copied `runs/` tree.
`metrics.csv` is the CSV logger's file: columns `epoch`, `step` and one per metric key, rows sparse
(each logging call fills its own keys), so every key becomes its own series of (step, epoch, value).
A run file that cannot be read is named in one line and skipped (the directory, or only its figures
when just `metrics.csv` or the histograms are bad), never a traceback: one damaged run must not hide a
whole study.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import yaml

from callbacks.activation_records import HISTOGRAM_FILE, read_histograms
from lightning_app.run.identity import BATCH_SIZE_KEY, data_name, get_dotted
from lightning_app.run.paths import CONFIG_FILE, METRICS_FILE, SUMMARY_FILE, experiment_of
from lightning_app.run.status import live_status
from lightning_app.run.metrics_rows import read_complete_rows

# The axes a study varies, and where each lives in a resolved config.
AXES = {"norm": "model.norm", "batch_size": BATCH_SIZE_KEY, "lr": "model.lr", "seed": "seed_everything",
        "weight_decay": "model.weight_decay"}


@dataclass(frozen=True)
class Series:
    """One metric of one run, in logging order: the optimizer step, the epoch and the value of each row."""

    steps: np.ndarray
    epochs: np.ndarray
    values: np.ndarray


def read_metrics(path: Path) -> dict[str, Series]:
    """Every column of a CSV-logger `metrics.csv` as a Series over the rows where it has a value. A step
    logged twice (a resumed run repeats the steps after its last checkpoint) keeps its latest value; a
    last row a kill cut short is left out. A file that is not such a table is a ValueError naming the
    file and the first bad line."""
    if not path.is_file():
        return {}
    try:
        rows, _ = read_complete_rows(path)  # a last row a kill cut short is not the file's fault
    except (UnicodeDecodeError, csv.Error) as error:
        raise ValueError(f"{path}: not a CSV-logger metrics file ({error})") from None
    columns: dict[str, dict[tuple[int, int], float]] = {}
    for line, row in enumerate(rows, start=2):
        try:
            if None in row or None in row.values():
                raise ValueError("its number of fields differs from the header's")
            step = int(float(row.get("step") or 0))
            epoch = int(float(row.get("epoch") or 0))
            for key, text in row.items():
                if key not in ("step", "epoch") and text != "":
                    columns.setdefault(key, {})[(step, epoch)] = float(text)
        except ValueError as error:
            raise ValueError(f"{path} line {line}: not a CSV-logger metrics row ({error})") from None
    series = {}
    for key, points in columns.items():
        ordered = sorted(points.items())
        series[key] = Series(np.array([s for (s, _), _ in ordered], dtype=np.int64),
                             np.array([e for (_, e), _ in ordered], dtype=np.int64),
                             np.array([v for _, v in ordered], dtype=np.float64))
    return series


def read_histogram_records(path: Path) -> list[dict]:
    """The records of an `activation_histograms.jsonl` (callbacks/activation_stats.read_histograms), each
    checked for what a figure reads: a file written by someone else is a ValueError naming the file and
    the first bad record, never a traceback in the middle of a figure. No file: no records."""
    if not path.is_file():
        return []
    try:
        records = read_histograms(path)
    except (UnicodeDecodeError, TypeError) as error:  # TypeError: a layer or channel that is a list or a map
        raise ValueError(f"{path}: not a histogram file ({type(error).__name__}: {error})") from None
    for record in records:
        problem = _histogram_problem(record)
        if problem:
            where = repr((record["step"], record["layer"], record["channel"], record["where"]))[:100]
            raise ValueError(f"{path}: the record (step, layer, channel, where) = {where} {problem}")
    return records


def _histogram_problem(record: dict) -> str | None:
    def count(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    bins, value_range, counts = record.get("bins"), record.get("range"), record.get("counts")
    if not (count(record["step"]) and isinstance(record["layer"], str) and count(record["channel"])
            and record["where"] in ("before", "after")):
        return "needs a step and a channel (integers >= 0), a layer name and where: before|after"
    if not (isinstance(bins, int) and bins >= 1 and isinstance(value_range, list) and len(value_range) == 2
            and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value_range)
            and value_range[0] < value_range[1]):
        return "needs bins >= 1 and a range [lo, hi] of finite numbers with lo < hi"
    if not (isinstance(counts, list) and len(counts) == bins and all(map(count, counts))
            and count(record.get("below")) and count(record.get("above"))):
        return "needs `bins` counts, below and above, each an integer >= 0"
    return None


def numeric_key(value) -> tuple:
    """Sort key that orders numbers numerically (2, 8, 32, 128) and puts anything else after them."""
    return (0, value, "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0, str(value))


@dataclass
class RunRecord:
    path: Path
    config: dict
    summary: dict

    @cached_property
    def metrics(self) -> dict[str, Series]:
        return read_metrics(self.path / METRICS_FILE)

    @cached_property
    def histograms(self) -> list[dict]:
        """The activation histograms (callbacks/activation_stats.py), none when the run did not measure them."""
        return read_histogram_records(self.path / HISTOGRAM_FILE)

    @property
    def experiment(self) -> str:
        return self.config.get("experiment") or experiment_of(self.path).name

    @property
    def name(self) -> str:
        return self.config.get("run_name") or self.path.name

    @cached_property
    def status(self) -> str:
        return live_status(self.summary.get("status", "unknown"), self.path)

    @property
    def dataset(self) -> str:
        return data_name(self.config.get("data"))

    @property
    def backbone(self) -> str:
        return str(get_dotted(self.config, ("model", "backbone")))

    def axis(self, name: str):
        """The value of a study axis (`norm`, `batch_size`, `lr`, `seed`)."""
        return get_dotted(self.config, AXES[name])

    @property
    def untrained(self) -> bool:
        """The run took no optimizer step: its accuracy is an initialisation's, not a result."""
        return self.summary.get("steps") == 0

    def accuracy(self, metric: str) -> float | None:
        """`metric` from summary.json; None when it is missing, not finite, or the run never trained."""
        value = self.summary.get(metric)
        if self.untrained or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) if math.isfinite(value) else None

    @property
    def images_per_step(self) -> int | None:
        """Training images per optimizer step (global batch × gradient accumulation), the x scale that
        makes runs at different batch sizes comparable."""
        batch = self.summary.get("global_batch_size") or self.axis("batch_size")
        accumulate = get_dotted(self.config, ("trainer", "accumulate_grad_batches")) or 1
        if not isinstance(batch, int) or not isinstance(accumulate, int):
            return None
        return batch * accumulate


def load_runs(root: Path) -> tuple[list[RunRecord], list[str]]:
    """Every run directory under `root` (one holding summary.json and config.yaml), sorted by path, and a
    one-line note for each run file that could not be read (its run is skipped, or kept without figures
    when only metrics.csv or the histograms are bad)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"runs directory {root} does not exist")
    runs, skipped = [], []
    for summary_path in sorted(root.rglob(SUMMARY_FILE)):
        config_path = summary_path.parent / CONFIG_FILE
        if not config_path.is_file():
            continue
        try:
            run = RunRecord(summary_path.parent, _read_mapping(config_path, yaml.safe_load, "YAML"),
                            _read_mapping(summary_path, json.loads, "JSON"))
        except ValueError as error:
            skipped.append(f"skipped {summary_path.parent}: {error}")
            continue
        try:
            run.metrics
        except ValueError as error:
            run.metrics = {}
            skipped.append(f"no curves for {run.path}: {error}")
        try:
            run.histograms
        except ValueError as error:
            run.histograms = []
            skipped.append(f"no activation histograms for {run.path}: {error}")
        runs.append(run)
    if not runs:
        raise ValueError(f"no run directories (with summary.json and config.yaml) under {root}"
                         + "".join(f"; {note}" for note in skipped))
    return runs, skipped


def _read_mapping(path: Path, parse, kind: str) -> dict:
    """A run file that must hold a non-empty mapping; anything else is a ValueError naming the file."""
    try:
        value = parse(path.read_text())
    except (UnicodeDecodeError, ValueError, yaml.YAMLError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ValueError(f"{path.name} is not valid {kind} ({reason})") from None
    if value is None:
        raise ValueError(f"{path.name} is empty")
    if not isinstance(value, dict) or not value:
        raise ValueError(f"{path.name} holds {type(value).__name__} {str(value)[:40]!r}, not a mapping of "
                         f"{'settings' if kind == 'YAML' else 'results'}")
    return value
