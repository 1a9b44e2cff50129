"""The course report's TensorBoard views (Sridhar, Azim & Talegaonkar 2018, "A Comparison of Batch
Normalization and Group Normalization", §III "Visualizations"), drawn from run directories that hold
the activation statistics (callbacks/activation_stats.py):

- the histogram of one channel's values before and after the norm as it evolves over training, time
  running from the back (top, the first measured step) to the front (bottom, the last), as TensorBoard's
  "offset" histogram view draws it, from `activation_histograms.jsonl`; one row per norm, columns before
  and after; each ridge is the density counts / (all values × bin width), so the area under a ridge is
  the share of the channel's values inside the histogram's range;
- the pre-norm means of a layer's chosen channels over training (± one standard deviation, √var), beside
  the layer's group coherence η² of the channel means and log-variances where the norm is grouped, from
  `activation/<layer>/mean@<c>`, `var@<c>` and `group_coherence_*` in `metrics.csv`; one row per norm;
- the gradient's global L2 norm per step (`grad/norm`, logged by the explosion detector in every run) of
  the norms of one comparison overlaid on a log axis (the report shows no-norm and GN on two scales).
Each figure compares runs that differ only in norm and seed and draws the first seed of each norm and
the deepest measured layer (the course report shows its network's second, last, norm layer). Every
function writes one PNG (atomically) and returns its path, or None when there is nothing to draw.
Series carry gids naming what they show: `hist:<norm>:<where>:<step>` (a ridge), `mean:<norm>:<channel>`,
`std:<norm>:<channel>` (its band), `coherence:<norm>:<mean|logvar>`, `grad:<norm>` (bin means) and
`grad_raw:<norm>` (every logged step).
"""
from __future__ import annotations

import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from callbacks.activation_records import WHERE, bin_edges  # noqa: E402
from lightning_app.report.figures import binned, finite, norm_colour, save_figure  # noqa: E402
from lightning_app.report.runs import RunRecord, Series, numeric_key  # noqa: E402
from lightning_app.report.tables import layer_order, ordered_norms  # noqa: E402

MAX_RIDGES = 12  # histograms per panel: more overlap into a blur
WINDOW_SHARE = 0.005  # the x axis leaves out the lowest and highest 0.5 % of a histogram's values
RIDGE_SPACING = 0.6  # ridge baselines apart, as a share of the panel's highest density
CHANNEL_KEY = re.compile(r"activation/(?P<layer>.+)/(?P<stat>mean|var)@(?P<channel>\d+)")
GRAD_BINS = 60  # bold bin means of grad/norm: thousands of steps stay one readable line per norm


def has_activation_statistics(run: RunRecord) -> bool:
    """The run measured its norm layers (histograms or `activation/*` scalars): only such runs' groups get
    the three figures, so a report of runs without the statistics is what it was before them."""
    return bool(run.histograms) or any(key.startswith("activation/") for key in run.metrics)


def first_seed_per_norm(runs: list[RunRecord], has) -> dict[str, RunRecord]:
    """norm -> its run of the lowest seed among those for which `has(run)` holds, norms in the registry's
    order."""
    chosen: dict[str, RunRecord] = {}
    for run in sorted(runs, key=lambda r: numeric_key(r.axis("seed"))):
        if has(run):
            chosen.setdefault(run.axis("norm"), run)
    return {norm: chosen[norm] for norm in ordered_norms(chosen)}


def spread(items: list, count: int) -> list:
    """At most `count` of `items`, evenly spaced, first and last included."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def density(record: dict) -> tuple[np.ndarray, np.ndarray]:
    """(bin centres, density) of one histogram record: counts / (all values × bin width), values below and
    above the range included in "all", so the area inside the range is the share of values in it."""
    edges = bin_edges(record["bins"], record["range"])
    counts = np.asarray(record["counts"], dtype=float)
    total = counts.sum() + record["below"] + record["above"]
    return (edges[:-1] + edges[1:]) / 2, counts / max(total, 1) / np.diff(edges)


def value_window(records: list[dict]) -> tuple[float, float] | None:
    """The x span that shows the bulk of the values: over `records`, from the bin holding the lowest to the
    bin holding the highest WINDOW_SHARE quantile of each histogram's in-range values, one bin more on
    each side where the range has one (a few far values would otherwise squeeze every peak into a line);
    None when no value fell inside the range."""
    spans = []
    for record in records:
        edges = bin_edges(record["bins"], record["range"])
        cumulative = np.cumsum(np.asarray(record["counts"], dtype=float))
        if cumulative[-1] > 0:
            first = int(np.searchsorted(cumulative, WINDOW_SHARE * cumulative[-1], side="right"))
            last = int(np.searchsorted(cumulative, (1 - WINDOW_SHARE) * cumulative[-1], side="left"))
            spans.append((edges[max(first - 1, 0)], edges[min(last + 2, record["bins"])]))
    return (min(lo for lo, _ in spans), max(hi for _, hi in spans)) if spans else None


def _deepest(layers) -> str:
    return max(layers, key=layer_order)


def plot_activation_histograms(runs: list[RunRecord], path: Path, title: str) -> Path | None:
    """Rows: norms; columns: before, after the norm; each panel the ridges of the deepest measured layer's
    lowest chosen channel at ≤ MAX_RIDGES measured steps, the oldest at the back (top), each newer one in
    front of (below and over) the older ones."""
    chosen = first_seed_per_norm(runs, lambda r: bool(r.histograms))
    if not chosen:
        return None
    fig, axes = plt.subplots(len(chosen), 2, figsize=(11, 3.6 * len(chosen)), squeeze=False)
    for row, (norm, run) in zip(axes, chosen.items()):
        layer = _deepest({r["layer"] for r in run.histograms})
        channel = min(r["channel"] for r in run.histograms if r["layer"] == layer)
        for ax, where in zip(row, WHERE):
            by_step = {r["step"]: r for r in run.histograms
                       if r["layer"] == layer and r["channel"] == channel and r["where"] == where}
            steps = spread(sorted(by_step), MAX_RIDGES)
            curves = [density(by_step[step]) for step in steps]
            spacing = RIDGE_SPACING * max((float(y.max()) for _, y in curves), default=0.0) or 1.0
            for k, (step, (x, y)) in enumerate(zip(steps, curves)):
                base = (len(steps) - 1 - k) * spacing  # the oldest at the top (back), the newest at the bottom
                colour = plt.get_cmap("viridis")(k / max(len(steps) - 1, 1))
                ax.fill_between(x, base, base + y, color="white", zorder=2 * k)  # hides the older ridges behind
                ax.plot(x, base + y, color=colour, linewidth=1.0, zorder=2 * k + 1, gid=f"hist:{norm}:{where}:{step}")
            window = value_window([by_step[step] for step in steps])
            if window is not None:
                ax.set_xlim(*window)
            ax.set_yticks([(len(steps) - 1 - k) * spacing for k in range(len(steps))],
                          [f"step {step}" for step in steps], fontsize=7)
            ax.set(title=f"{norm} (seed {run.axis('seed')}) · {layer}, channel {channel}: {where} the norm",
                   xlabel="value")
            ax.title.set_fontsize(9)
    fig.suptitle(f"Channel histograms over training: {title}\n(density; back/top: the first measured step, "
                 f"front/bottom: the last; x: the central {100 * (1 - 2 * WINDOW_SHARE):g} % of each histogram's "
                 "values)", fontsize=10)
    return save_figure(fig, path)


def _aligned(mean: Series, var: Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, mean, var) at the steps both were logged."""
    steps, at_mean, at_var = np.intersect1d(mean.steps, var.steps, return_indices=True)
    return steps, finite(mean.values[at_mean]), finite(var.values[at_var])


def channel_series(run: RunRecord) -> dict[str, dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """layer -> channel -> (steps, mean, var) from metrics.csv's `activation/<layer>/mean|var@<c>`."""
    found: dict[str, dict[int, dict[str, Series]]] = {}
    for key, series in run.metrics.items():
        match = CHANNEL_KEY.fullmatch(key)
        if match:
            found.setdefault(match["layer"], {}).setdefault(int(match["channel"]), {})[match["stat"]] = series
    layers = {layer: {c: _aligned(s["mean"], s["var"]) for c, s in sorted(channels.items()) if len(s) == 2}
              for layer, channels in found.items()}
    return {layer: channels for layer, channels in layers.items() if channels}


def plot_channel_means(runs: list[RunRecord], path: Path, title: str) -> Path | None:
    """Rows: norms; left the deepest measured layer's chosen channels' means before the norm over training
    with a ± std band, right that layer's group coherence η² (channel means and log-variances) where the
    norm is grouped."""
    chosen = first_seed_per_norm(runs, lambda r: bool(channel_series(r)))
    if not chosen:
        return None
    fig, axes = plt.subplots(len(chosen), 2, figsize=(12, 3.4 * len(chosen)), squeeze=False)
    for (left, right), (norm, run) in zip(axes, chosen.items()):
        layers = channel_series(run)
        layer = _deepest(layers)
        for channel, (steps, mean, var) in layers[layer].items():
            colour = plt.get_cmap("tab10")(channel % 10)
            std = np.sqrt(np.maximum(var, 0))
            left.fill_between(steps, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0,
                              gid=f"std:{norm}:{channel}")
            left.plot(steps, mean, color=colour, label=f"channel {channel}", gid=f"mean:{norm}:{channel}")
        left.set(title=f"{norm} (seed {run.axis('seed')}) · {layer}: channel means before the norm (± std)",
                 xlabel="training step", ylabel="mean over (N, H, W)")
        left.title.set_fontsize(9)
        left.legend(fontsize=8)
        coherence = {stat: run.metrics[key] for stat in ("mean", "logvar")
                     if (key := f"activation/{layer}/group_coherence_{stat}") in run.metrics}
        if coherence:
            for (stat, series), style in zip(coherence.items(), ("-", "--")):
                right.plot(series.steps, finite(series.values), style, color="black",
                           label=f"η² of the channel {'means' if stat == 'mean' else 'log-variances'}",
                           gid=f"coherence:{norm}:{stat}")
            right.set(ylim=(0, 1.02), xlabel="training step", ylabel="η² (between-group share)",
                      title=f"{norm} · {layer}: group coherence η² (1: a group's channels share the statistic)")
            right.title.set_fontsize(9)
            right.legend(fontsize=8)
        else:
            right.set_axis_off()
            right.text(0.5, 0.5, f"{norm} does not group channels: no group coherence", ha="center", va="center")
    fig.suptitle(f"Channel statistics before the norm over training: {title}", fontsize=10)
    return save_figure(fig, path)


def plot_grad_norms(runs: list[RunRecord], path: Path, title: str, every_seed: bool = False) -> Path | None:
    """`grad/norm` per step of each norm among `runs` (the first seed of each, or with `every_seed` one line
    per seed, told apart by line style) on a log axis: every logged step thin, bin means bold, so both
    spikes and the trend show. Needs two norms to overlay."""
    logged = [run for run in runs if "grad/norm" in run.metrics]
    chosen = first_seed_per_norm(logged, lambda r: True)
    if len(chosen) < 2:
        return None
    norm_order = list(chosen)
    lines = sorted(logged, key=lambda r: (norm_order.index(r.axis("norm")), numeric_key(r.axis("seed")))) \
        if every_seed else list(chosen.values())
    seed_styles = ["-", "--", ":", "-."]
    seed_order = sorted({run.axis("seed") for run in lines}, key=numeric_key)
    fig, ax = plt.subplots(figsize=(9, 4.4))
    for run in lines:
        norm, seed = run.axis("norm"), run.axis("seed")
        series = run.metrics["grad/norm"]
        colour, gid = norm_colour(norm), f"{norm}:s{seed}" if every_seed else norm
        style = seed_styles[seed_order.index(seed) % len(seed_styles)] if every_seed else "-"
        values = finite(series.values)
        ax.plot(series.steps, values, color=colour, linewidth=0.4, alpha=0.35, gid=f"grad_raw:{gid}")
        x, mean = binned(series.steps, values, bins=GRAD_BINS)
        ax.plot(x, mean, color=colour, linestyle=style, linewidth=1.8, label=f"{norm} (seed {seed})",
                gid=f"grad:{gid}")
    ax.set(yscale="log", xlabel="training step", ylabel="gradient L2 norm (all parameters)",
           title=f"Gradient L2 norm per step (thin: every logged step; bold: means in ≤ {GRAD_BINS} bins)\n"
                 + textwrap.fill(title, 100))
    ax.title.set_fontsize(9)
    ax.legend(title="norm", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return save_figure(fig, path)
