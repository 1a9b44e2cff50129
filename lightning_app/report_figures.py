"""The report's figures (matplotlib, Agg: no display needed), each from run records' `metrics.csv`:

- λ trajectories: σ(λ) against step, one line per GNPlus layer (GN paper §4), per run and as a grid;
- landscape bands (Santurkar et al. 2018, Fig. 4): the min–max band of the probed loss and gradient
  predictiveness over steps, and the effective β-smoothness, one colour per norm, seeds overlaid;
- the learning-rate envelope (GN paper, Figures 6–8): for runs that differ only in LR, the band between
  the lowest and the highest training loss across the LR runs at each step, one colour per norm;
- training curves: training loss, validation loss and accuracy per norm.
Every function writes one PNG and returns its path, or None when the runs hold nothing to draw.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from lightning_app.report_tables import ordered_norms  # noqa: E402
from lightning_app.runs import RunRecord, Series  # noqa: E402
from models.norms import norm_names  # noqa: E402

LANDSCAPE_PANELS = (("loss", "loss at θ − η·g", "loss landscape"),
                    ("grad_pred", "‖∇L(θ − η·g) − g‖", "gradient predictiveness"))


def norm_colour(norm: str):
    """One colour per norm, the same in every figure."""
    known = norm_names()
    index = known.index(norm) if norm in known else len(known) + sum(map(ord, norm))
    return plt.get_cmap("tab10")(index % 10)


def finite(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def run_label(run: RunRecord) -> str:
    status = "" if run.status == "completed" else f" ({run.status})"
    return f"{run.axis('norm')} · bs {run.axis('batch_size')} · lr {run.axis('lr'):g} · seed {run.axis('seed')}{status}"


def study_order(run: RunRecord) -> tuple:
    """Sort key: norm, then batch size, learning rate and seed as numbers."""
    return str(run.axis("norm")), *(run.axis(a) if isinstance(run.axis(a), (int, float)) else 0
                                    for a in ("batch_size", "lr", "seed"))


def _save(fig, path: Path) -> Path:
    for ax in fig.axes:  # every x axis here counts steps or epochs
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def lambda_keys(run: RunRecord) -> list[str]:
    return sorted(key for key in run.metrics if key.startswith("lambda/"))


def _draw_lambda(ax, run: RunRecord, legend: bool) -> None:
    for key in lambda_keys(run):
        series = run.metrics[key]
        ax.plot(series.steps, finite(series.values), marker=".", markersize=3, label=key.removeprefix("lambda/"))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("σ(λ) (weight on GN)")
    if legend:
        ax.legend(title="GNPlus layer", fontsize=8)


def plot_lambda(run: RunRecord, path: Path) -> Path | None:
    if not lambda_keys(run):
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4))
    _draw_lambda(ax, run, legend=True)
    ax.set_title(f"σ(λ) per layer: {run_label(run)}", fontsize=10)
    return _save(fig, path)


def plot_lambda_grid(runs: list[RunRecord], path: Path) -> Path | None:
    runs = sorted((run for run in runs if lambda_keys(run)), key=study_order)
    if len(runs) < 2:
        return None
    columns = min(3, len(runs))
    rows = -(-len(runs) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.4 * rows), squeeze=False, sharey=True)
    for ax, run in zip(axes.flat, runs):
        _draw_lambda(ax, run, legend=ax is axes.flat[0])
        ax.set_title(run_label(run), fontsize=9)
    for ax in list(axes.flat)[len(runs):]:
        ax.set_visible(False)
    fig.suptitle("σ(λ) per GNPlus layer")
    return _save(fig, path)


def band(run: RunRecord, quantity: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(steps, min, max) of `landscape/<quantity>` at each probed step: the logged `_min`/`_max`
    columns, or else the extremes over the per-η columns `landscape/<quantity>@<η>`."""
    low, high = run.metrics.get(f"landscape/{quantity}_min"), run.metrics.get(f"landscape/{quantity}_max")
    if low is not None and high is not None:
        return low.steps, finite(low.values), finite(high.values)
    per_eta = [s for key, s in run.metrics.items() if key.startswith(f"landscape/{quantity}@")]
    if not per_eta:
        return None
    steps = np.array(sorted(set().union(*(s.steps.tolist() for s in per_eta))))
    stacked = np.stack([np.interp(steps, s.steps, finite(s.values), left=np.nan, right=np.nan) for s in per_eta])
    with np.errstate(all="ignore"):
        return steps, np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)


def plot_landscape(runs: list[RunRecord], path: Path, title: str) -> Path | None:
    if not any(band(run, "loss") or "landscape/beta_eff" in run.metrics for run in runs):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    labelled: set[tuple[int, str]] = set()
    for run in runs:
        norm = run.axis("norm")
        colour = norm_colour(norm)
        for ax, (quantity, ylabel, panel) in zip(axes, LANDSCAPE_PANELS):
            found = band(run, quantity)
            if found is not None:
                steps, low, high = found
                ax.fill_between(steps, low, high, color=colour, alpha=0.3, linewidth=0,
                                label=None if (id(ax), norm) in labelled else norm)
                for edge in (low, high):  # edges keep overlapping bands apart
                    ax.plot(steps, edge, color=colour, linewidth=0.8)
                labelled.add((id(ax), norm))
            ax.set(title=panel, xlabel="optimizer step", ylabel=ylabel)
        beta = run.metrics.get("landscape/beta_eff")
        if beta is not None:
            axes[2].plot(beta.steps, finite(beta.values), color=colour,
                         label=None if (id(axes[2]), norm) in labelled else norm)
            labelled.add((id(axes[2]), norm))
    axes[2].set(title="effective β-smoothness", xlabel="optimizer step", ylabel="max ‖Δ∇L‖ / ‖Δθ‖")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="norm")
    fig.suptitle(f"Landscape along the gradient (band: min–max over step sizes η): {title}", fontsize=10)
    return _save(fig, path)


def envelope(curves: list[Series]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, lowest, highest) value across `curves` at each step any of them logged; a curve counts
    between its first and last step (linearly interpolated), so a run that exploded drops out after."""
    steps = np.array(sorted(set().union(*(c.steps.tolist() for c in curves))))
    stacked = np.stack([np.interp(steps, c.steps, finite(c.values), left=np.nan, right=np.nan) for c in curves])
    with np.errstate(all="ignore"):
        return steps, np.nanmin(stacked, axis=0), np.nanmax(stacked, axis=0)


def plot_lr_envelope(runs: list[RunRecord], path: Path, title: str, key: str = "train/loss") -> Path | None:
    by_norm: dict[str, list[RunRecord]] = {}
    for run in runs:
        if key in run.metrics:
            by_norm.setdefault(run.axis("norm"), []).append(run)
    by_norm = {n: rs for n, rs in by_norm.items() if len({r.axis("lr") for r in rs}) > 1}
    if not by_norm:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for norm in ordered_norms(by_norm):
        group = by_norm[norm]
        steps, low, high = envelope([run.metrics[key] for run in group])
        lrs = sorted({run.axis("lr") for run in group})
        colour = norm_colour(norm)
        ax.fill_between(steps, low, high, color=colour, alpha=0.3, linewidth=0,
                        label=f"{norm} (lr {', '.join(f'{lr:g}' for lr in lrs)})")
        ax.plot(steps, low, color=colour, linewidth=0.8)
        ax.plot(steps, high, color=colour, linewidth=0.8)
    ax.set(xlabel="optimizer step", ylabel=f"{key} (min–max over learning rates)",
           title=f"Learning-rate envelope: {title}")
    ax.title.set_fontsize(10)
    ax.legend(title="norm")
    return _save(fig, path)


def plot_training_curves(runs: list[RunRecord], path: Path, title: str) -> Path | None:
    panels = (("train/loss", "optimizer step", "training loss"), ("val/loss", "epoch", "validation loss"),
              ("val/acc", "epoch", "validation accuracy"))
    if not any(key in run.metrics for run in runs for key, _, _ in panels):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for norm in ordered_norms(run.axis("norm") for run in runs):
        group = [run for run in runs if run.axis("norm") == norm]
        label = f"{norm} ({len(group)} seed{'s' * (len(group) > 1)})"
        for ax, (key, xlabel, ylabel) in zip(axes, panels):
            for run in group:
                series = run.metrics.get(key)
                if series is None:
                    continue
                x = series.steps if xlabel == "optimizer step" else series.epochs + 1
                y = finite(series.values)
                ax.plot(x, y, color=norm_colour(norm), linewidth=1.2, label=label,
                        marker="o" if xlabel == "epoch" or len(x) <= 30 else None, markersize=3)
                label = None  # one legend entry per norm
                if run.status == "exploded" and np.isfinite(y).any():
                    last = np.flatnonzero(np.isfinite(y))[-1]
                    ax.plot(x[last], y[last], "x", color="black", markersize=9, markeredgewidth=2)
            ax.set(xlabel=xlabel, ylabel=ylabel, title=ylabel)
            if xlabel == "epoch":
                last_epoch = max((int(r.metrics[key].epochs.max()) + 1 for r in runs if key in r.metrics), default=1)
                ax.set_xlim(0.5, last_epoch + 0.5)  # whole epochs, also for a single one
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="norm")
    exploded = " (× : last value before the run exploded)" if any(r.status == "exploded" for r in runs) else ""
    fig.suptitle(f"Training curves: {title}{exploded}", fontsize=10)
    return _save(fig, path)
