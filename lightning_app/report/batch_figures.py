"""The report's batch-size figures: what the GN paper argues with, for runs that differ in norm, batch
size and seed (groups.grouped), each written atomically as one PNG:

- accuracy against batch size (Wu & He 2018, Fig. 1): log₂ axis, one line per norm, mean ± sample std
  band over seeds, × where seeds exploded (at the cell's mean, or under the lowest mean when every seed
  exploded), from the same cells as the table (tables.accuracy_table);
- final σ(λ) per GNPlus layer against batch size ("Understanding and Improving Group Normalization",
  §4): one panel per GNPlus norm, one line per layer, the start value dashed (tables.final_lambda_tables);
- σ(λ) trajectories against training images seen: one panel per (GNPlus norm, batch size), one line per
  layer (mean over seeds, ± std band), the start value marked, every panel on the same y axis [0, 1]
  so that a move of 0.005 looks like one.
Each series carries a gid (`mean:<norm>`, `band:<norm>`, `exploded:<norm>`, `layer:<norm>:<layer>`, ...).
"""
from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from lightning_app.report.figures import finite, images_seen, norm_colour, save_figure, seed_band
from lightning_app.report.runs import RunRecord, numeric_key
from lightning_app.report.tables import AccuracyTable, final_lambda_tables, layer_order, ordered_norms
from lightning_app.run.identity import model_args

LAMBDA_RANGE = (0.0, 1.0)  # σ(λ) lives in (0, 1): one fixed axis for every λ panel


def _log2_batch_axis(ax, batch_sizes: list[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(batch_sizes, [str(bs) for bs in batch_sizes])
    ax.minorticks_off()
    ax.set_xlabel("batch size (log₂)")


def plot_accuracy_vs_batch(table: AccuracyTable, path: Path, title: str, ylabel: str) -> Path | None:
    if table.empty:
        return None
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    lowest = min(c.mean for c in table.cells.values() if c.mean is not None)
    floor = lowest - max(1.0, 0.05 * abs(lowest))  # where an all-exploded cell is marked
    for norm in table.norms:
        cells = [(bs, table.cells.get((bs, norm))) for bs in table.batch_sizes]
        points = [(bs, c.mean, c.std or 0.0) for bs, c in cells if c is not None and c.mean is not None]
        colour = norm_colour(norm)
        if points:
            x, mean, std = (np.array(v, dtype=float) for v in zip(*points))
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0, gid=f"band:{norm}")
            ax.plot(x, mean, color=colour, marker="o", label=norm, gid=f"mean:{norm}")
        marks = [(bs, c.mean if c.mean is not None else floor) for bs, c in cells if c is not None and c.exploded]
        if marks:
            mx, my = zip(*marks)
            ax.plot(mx, my, "x", color=colour, markersize=11, markeredgewidth=2.5, linestyle="none",
                    gid=f"exploded:{norm}")
    _log2_batch_axis(ax, table.batch_sizes)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(title="norm", fontsize=8)
    exploded = any(c.exploded for c in table.cells.values())
    ax.set_title(f"{title}\nmean ± std over seeds" + (" · ×: seeds that exploded" if exploded else ""), fontsize=9)
    return save_figure(fig, path)


def lambda_start(runs: list[RunRecord]) -> float:
    """σ(λ) before training: the first logged value where the λ tracker logged step 0, else σ of the
    configured `lambda_init` (GNPlus default 1.0)."""
    for run in runs:
        for key, series in run.metrics.items():
            if key.startswith("lambda/") and len(series.steps) and series.steps[0] == 0:
                return float(series.values[0])
    options = model_args(runs[0].config).get("norm_options") or {} if runs else {}
    return 1.0 / (1.0 + math.exp(-float(options.get("lambda_init", 1.0))))


def _layer_colours(layers: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap("viridis")
    return {layer: cmap(i / max(len(layers) - 1, 1)) for i, layer in enumerate(layers)}


def _mark_start(ax, start: float) -> None:
    ax.axhline(start, color="grey", linestyle="--", linewidth=1, gid="start", label=f"start {start:.3f}")


def plot_final_lambda_vs_batch(runs: list[RunRecord], path: Path, title: str) -> Path | None:
    tables = {norm: t for norm, t in final_lambda_tables(runs).items() if len(t.batch_sizes) > 1}
    if not tables:
        return None
    start = lambda_start(runs)
    fig, axes = plt.subplots(1, len(tables), figsize=(5.2 * len(tables), 4.4), squeeze=False, sharey=True)
    for ax, (norm, table) in zip(axes[0], tables.items()):
        colours = _layer_colours(table.norms)
        for layer in table.norms:
            points = [(bs, c.mean, c.std or 0.0) for bs in table.batch_sizes
                      if (c := table.cells.get((bs, layer))) is not None]
            x, mean, std = (np.array(v, dtype=float) for v in zip(*points))
            ax.fill_between(x, mean - std, mean + std, color=colours[layer], alpha=0.15, linewidth=0,
                            gid=f"band:{norm}:{layer}")
            ax.plot(x, mean, color=colours[layer], marker="o", markersize=4, label=layer, gid=f"layer:{norm}:{layer}")
        _mark_start(ax, start)
        _log2_batch_axis(ax, table.batch_sizes)
        ax.set(ylim=LAMBDA_RANGE, title=norm, ylabel="final σ(λ) (weight on GN)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(title="layer (input → output)", fontsize=7)
    fig.suptitle(f"Final σ(λ) per GNPlus layer, mean ± std over seeds: {title}", fontsize=10)
    return save_figure(fig, path)


def plot_lambda_trajectories(runs: list[RunRecord], path: Path, title: str) -> Path | None:
    runs = [run for run in runs if run.images_per_step and any(k.startswith("lambda/") for k in run.metrics)]
    if not runs:
        return None
    norms = ordered_norms(run.axis("norm") for run in runs)
    batch_sizes = sorted({run.axis("batch_size") for run in runs}, key=numeric_key)
    start = lambda_start(runs)
    fig, axes = plt.subplots(len(norms), len(batch_sizes), figsize=(3.8 * len(batch_sizes) + 1, 3.2 * len(norms)),
                             squeeze=False, sharey=True)
    for row, norm in zip(axes, norms):
        for ax, bs in zip(row, batch_sizes):
            group = [run for run in runs if run.axis("norm") == norm and run.axis("batch_size") == bs]
            layers = sorted({k for run in group for k in run.metrics if k.startswith("lambda/")}, key=layer_order)
            colours = _layer_colours(layers)
            for key in layers:
                curves = [(images_seen(run, run.metrics[key]), finite(run.metrics[key].values))
                          for run in group if key in run.metrics]
                x, mean, std = seed_band(curves)
                layer = key.removeprefix("lambda/").removeprefix("net.")
                ax.fill_between(x, mean - std, mean + std, color=colours[key], alpha=0.15, linewidth=0,
                                gid=f"band:{norm}:bs{bs}:{layer}")
                ax.plot(x, mean, color=colours[key], linewidth=1.2, label=layer, gid=f"layer:{norm}:bs{bs}:{layer}")
            _mark_start(ax, start)
            ax.plot([0], [start], "o", color="grey", markersize=5)
            ax.set(ylim=LAMBDA_RANGE, title=f"{norm} · bs {bs} ({len(group)} seed{'s' * (len(group) != 1)})")
            ax.title.set_fontsize(9)
            ax.set_xlabel("training images seen")
            if ax is row[0]:
                ax.set_ylabel("σ(λ) (weight on GN)")
    axes[0][0].legend(title="layer", fontsize=7)
    fig.suptitle(f"σ(λ) per GNPlus layer during training, mean ± std over seeds (dashed: start): {title}",
                 fontsize=10)
    return save_figure(fig, path)
