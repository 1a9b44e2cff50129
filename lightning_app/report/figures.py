"""The report's figures over training time (matplotlib, Agg: no display needed), from `metrics.csv`:

- training curves: training loss, validation loss and accuracy against *images seen* (optimizer step ×
  images per step), so runs at different batch sizes share one axis; validation points sit at the step
  they were measured; one row per batch size, one colour per norm, seeds as mean ± std band;
- landscape bands (Santurkar et al. 2018, Fig. 4): the min–max band of the probed loss and gradient
  predictiveness, and the effective β-smoothness, averaged in bins of images seen, so hundreds of probes
  (and several seeds) stay one readable band per norm;
- the learning-rate envelope (GN paper, Figures 6–8): for runs that differ only in LR, the band between
  the lowest and the highest training loss across the LR runs at each step, one colour per norm.
Every function writes one PNG (atomically) and returns its path, or None when the runs hold nothing to
draw. Each drawn series carries a gid (`mean:<norm>:bs<bs>`, `band:...`) naming what it shows.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from callbacks.run_files import atomic_open  # noqa: E402
from lightning_app.report.runs import RunRecord, Series, numeric_key  # noqa: E402
from lightning_app.report.tables import ordered_norms  # noqa: E402
from models.norm_names import NORM_NAMES  # noqa: E402

LANDSCAPE_PANELS = (("loss", "loss at θ − η·g", "loss landscape"),
                    ("grad_pred", "‖∇L(θ − η·g) − g‖", "gradient predictiveness"))
CURVE_PANELS = (("train/loss", "training loss"), ("val/loss", "validation loss"), ("val/acc", "validation accuracy"))
MAX_POINTS = 40  # bins per curve where a series has more points than a reader can tell apart
LOSS_BINS = 20  # a logged training loss is one batch's: coarser bins average several batches


def norm_colour(norm: str):
    """One colour per norm, the same in every figure."""
    known = list(NORM_NAMES)
    index = known.index(norm) if norm in known else len(known) + sum(map(ord, norm))
    return plt.get_cmap("tab10")(index % 10)


def finite(values: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(values), values, np.nan)


def study_order(run: RunRecord) -> tuple:
    """Sort key: norm, then batch size, learning rate and seed as numbers."""
    return str(run.axis("norm")), *(numeric_key(run.axis(a)) for a in ("batch_size", "lr", "seed"))


def save_figure(fig, path: Path) -> Path:
    """Write the PNG atomically (a killed report leaves the previous figure, never half of one)."""
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path


def images_seen(run: RunRecord, series: Series) -> np.ndarray | None:
    per_step = run.images_per_step
    return None if per_step is None else series.steps * per_step


def seed_band(curves: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, mean, std) over seeds at every x any seed has; a seed counts between its first and last x
    (linearly interpolated), so a run that exploded drops out after its end. std is the sample std
    (0 where one seed covers x)."""
    x = np.array(sorted(set().union(*(c[0].tolist() for c in curves))), dtype=float)
    stacked = np.stack([np.interp(x, cx, finite(cy), left=np.nan, right=np.nan) for cx, cy in curves])
    present = np.isfinite(stacked)
    counts = present.sum(axis=0)
    mean = np.where(counts > 0, np.where(present, stacked, 0.0).sum(axis=0) / np.maximum(counts, 1), np.nan)
    centred = np.where(present, stacked - mean, 0.0)
    std = np.where(counts > 1, np.sqrt((centred ** 2).sum(axis=0) / np.maximum(counts - 1, 1)), 0.0)
    return x, mean, std


def binned(x: np.ndarray, *ys: np.ndarray, bins: int = MAX_POINTS) -> tuple[np.ndarray, ...]:
    """(x, *ys) averaged in `bins` equal-width bins of x (finite values only); unchanged when short."""
    x = np.asarray(x, dtype=float)
    if len(np.unique(x)) <= bins:
        return (x, *ys)
    edges = np.linspace(x.min(), x.max(), bins + 1)
    index = np.clip(np.digitize(x, edges[1:-1]), 0, bins - 1)
    used = np.unique(index)
    out = [np.array([x[index == b].mean() for b in used])]
    with np.errstate(all="ignore"):
        for y in ys:
            y = finite(np.asarray(y, dtype=float))
            out.append(np.array([np.nanmean(y[index == b]) if np.isfinite(y[index == b]).any() else np.nan
                                 for b in used]))
    return tuple(out)


def _integer_x(ax) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def plot_training_curves(runs: list[RunRecord], path: Path, title: str) -> Path | None:
    """One row per batch size, one panel per quantity, x = images seen; per norm the seeds' mean line and
    a ± std band; × marks an exploded run's last finite value."""
    drawable = [run for run in runs if run.images_per_step and any(key in run.metrics for key, _ in CURVE_PANELS)]
    if not drawable:
        return None
    batch_sizes = sorted({run.axis("batch_size") for run in drawable}, key=numeric_key)
    fig, axes = plt.subplots(len(batch_sizes), 3, figsize=(15, 3.8 * len(batch_sizes)), squeeze=False,
                             sharex=True, sharey="col")
    for row, bs in zip(axes, batch_sizes):
        at_bs = [run for run in drawable if run.axis("batch_size") == bs]
        for norm in ordered_norms(run.axis("norm") for run in at_bs):
            group = [run for run in at_bs if run.axis("norm") == norm]
            for ax, (key, ylabel) in zip(row, CURVE_PANELS):
                _draw_seed_band(ax, group, key, f"{norm}:bs{bs}", norm, validation=not key.startswith("train/"))
        for ax, (_, ylabel) in zip(row, CURVE_PANELS):
            ax.set(title=f"{ylabel} · batch size {bs}", xlabel="training images seen", ylabel=ylabel)
            _integer_x(ax)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(title="norm (seeds)", fontsize=8)
    exploded = " (×: last finite value of a run that exploded)" if any(r.status == "exploded" for r in runs) else ""
    fig.suptitle(f"Training curves, mean ± std over seeds: {title}{exploded}", fontsize=10)
    return save_figure(fig, path)


def _draw_seed_band(ax, group: list[RunRecord], key: str, gid: str, norm: str, validation: bool) -> None:
    curves = []
    for run in group:
        series = run.metrics.get(key)
        if series is None or not len(series.steps):
            continue
        x, y = images_seen(run, series), finite(series.values)
        curves.append((x, y))
        if run.status == "exploded" and np.isfinite(y).any():
            last = np.flatnonzero(np.isfinite(y))[-1]
            ax.plot(x[last], y[last], "x", color="black", markersize=9, markeredgewidth=2, gid=f"exploded:{gid}")
    if not curves:
        return
    x, mean, std = seed_band(curves)
    if not validation:  # training loss: one batch per logged point, averaged in bins to stay readable
        x, mean, std = binned(x, mean, std, bins=LOSS_BINS)
    colour = norm_colour(norm)
    ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.25, linewidth=0, gid=f"band:{gid}")
    ax.plot(x, mean, color=colour, linewidth=1.3, marker="o" if validation else None, markersize=3.5,
            label=f"{norm} ({len(curves)})", gid=f"mean:{gid}")


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
    """Per norm, every probe of every seed pooled and averaged in bins of images seen: the band between
    the mean lowest and mean highest value over the step sizes, and the mean β-smoothness."""
    runs = [run for run in runs if run.images_per_step]
    if not any(band(run, "loss") or "landscape/beta_eff" in run.metrics for run in runs):
        return None
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for norm in ordered_norms(run.axis("norm") for run in runs):
        group = [run for run in runs if run.axis("norm") == norm]
        colour = norm_colour(norm)
        for ax, (quantity, ylabel, panel) in zip(axes, LANDSCAPE_PANELS):
            found = [(run.images_per_step * steps, low, high) for run in group
                     if (found := band(run, quantity)) is not None for steps, low, high in [found]]
            if found:
                x, low, high = binned(*(np.concatenate(parts) for parts in zip(*found)))
                ax.fill_between(x, low, high, color=colour, alpha=0.3, linewidth=0, label=norm, gid=f"band:{norm}")
                for edge in (low, high):  # edges keep overlapping bands apart
                    ax.plot(x, edge, color=colour, linewidth=0.8)
            ax.set(title=panel, xlabel="training images seen", ylabel=ylabel)
        betas = [(images_seen(run, run.metrics["landscape/beta_eff"]), run.metrics["landscape/beta_eff"].values)
                 for run in group if "landscape/beta_eff" in run.metrics]
        if betas:
            x, beta = binned(np.concatenate([b[0] for b in betas]), np.concatenate([b[1] for b in betas]))
            axes[2].plot(x, beta, color=colour, label=norm, gid=f"beta:{norm}")
    axes[2].set(title="effective β-smoothness", xlabel="training images seen", ylabel="max ‖Δ∇L‖ / ‖Δθ‖")
    for ax in axes:
        _integer_x(ax)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(title="norm")
    fig.suptitle(f"Landscape along the gradient (band: min–max over step sizes η, averaged over seeds in "
                 f"≤ {MAX_POINTS} bins): {title}", fontsize=10)
    return save_figure(fig, path)


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
                        label=f"{norm} (lr {', '.join(f'{lr:g}' for lr in lrs)})", gid=f"band:{norm}")
        ax.plot(steps, low, color=colour, linewidth=0.8)
        ax.plot(steps, high, color=colour, linewidth=0.8)
    ax.set(xlabel="optimizer step", ylabel=f"{key} (min–max over learning rates)",
           title=f"Learning-rate envelope: {title}")
    ax.title.set_fontsize(10)
    _integer_x(ax)
    ax.legend(title="norm")
    return save_figure(fig, path)
