"""Picking runs by what they are, for claims that compare particular configurations (the course report's
BN at batch 10 against no normalization, GN with output noise against GN without, ...), and the few
per-run numbers those claims read from `metrics.csv` and `summary.json`."""
from __future__ import annotations

import math

import numpy as np

from lightning_app.report.runs import RunRecord, numeric_key
from lightning_app.run.identity import get_dotted

# Config keys the claims select on, beside the report's axes (norm, batch_size, lr, seed, weight_decay).
SELECTORS = {"groups": "model.norm_groups", "noise_std": "model.norm_options.noise_std",
             "noise_granularity": "model.norm_options.noise_granularity"}
VANISH = 4  # `explosion/kind` of the explosion detector's vanish check


def value(run: RunRecord, key: str):
    return get_dotted(run.config, SELECTORS[key]) if key in SELECTORS else run.axis(key)


def matches(actual, wanted) -> bool:
    if isinstance(wanted, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return math.isclose(actual, wanted, rel_tol=1e-9)
    return actual == wanted


def pick(runs: list[RunRecord], **where) -> RunRecord | None:
    """The one run whose config has every `key=value` of `where` (None: none; the first by path if
    several, as the report counts one run per science)."""
    found = [run for run in runs if all(matches(value(run, k), v) for k, v in where.items())]
    return min(found, key=lambda r: str(r.path)) if found else None


def seeds(runs: list[RunRecord]) -> list:
    return sorted({run.axis("seed") for run in runs}, key=numeric_key)


def finite_values(run: RunRecord, key: str) -> np.ndarray:
    series = run.metrics.get(key)
    if series is None:
        return np.array([])
    values = series.values
    return values[np.isfinite(values)]


def mean_train_loss(run: RunRecord) -> float | None:
    """The mean of the logged training loss over the run: with the same logging interval in images and
    the same image budget, a lower value means the loss fell sooner (the area under the curve)."""
    values = finite_values(run, "train/loss")
    return float(values.mean()) if len(values) else None


def final_train_loss(run: RunRecord) -> float | None:
    """The mean of the last quarter of the logged training loss (at least one point): where training
    ended, smoothed over the single-batch noise of each logged value."""
    values = finite_values(run, "train/loss")
    return float(values[-max(1, len(values) // 4):].mean()) if len(values) else None


def last_train_accuracy(run: RunRecord) -> float | None:
    """The training accuracy of the last epoch (`train/acc`, accumulated over that epoch), in %."""
    values = finite_values(run, "train/acc")
    return 100 * float(values[-1]) if len(values) else None


def median_grad_norm(run: RunRecord) -> float | None:
    values = finite_values(run, "grad/norm")
    return float(np.median(values)) if len(values) else None


def vanished(run: RunRecord) -> bool:
    """The explosion detector's vanish check fired (its `explosion/kind` rows in metrics.csv)."""
    return bool(np.any(finite_values(run, "explosion/kind") == VANISH))


def percent(run: RunRecord, metric: str) -> float | None:
    accuracy = run.accuracy(metric)
    return None if accuracy is None else 100 * accuracy
