"""The GN paper's landscape figures (Gunawan, Yin & Zhang 2022, Figures 6–10): bands over step sizes *and*
learning rates, two norms overlaid.

The paper trains one network per learning rate (1e-4 … 5e-4, one shared seed: the same initial weights
and batches) and draws, at each training step, the band between the lowest and the highest value across
them (appendix B.2: the five LRs stand in for "moving to different points along the gradient"). normlab's
probe (`callbacks/landscape.py`, Santurkar et al. 2018, Fig. 4) moves along the gradient itself at step
sizes η, on the step's own batch, and logs the extremes over η as `landscape/<quantity>_min|max`. The band
here is both: at probed step t of one arm (a norm at one weight decay) and one seed,

    low(t)  = min over the arm's LR runs of landscape/<quantity>_min(t)
    high(t) = max over the arm's LR runs of landscape/<quantity>_max(t)

for quantity `loss` (loss landscape: L(θ − η·g; B), η = 0 included) and `grad_pred` (gradient
predictiveness: ‖∇L(θ − η·g; B) − g‖). Quantity `train_loss` is the measure of the paper's own code
(its notebooks 3–6, 9–12): the logged training loss (`train/loss`, one batch per point), so its band is
the spread of the training loss across the LR runs alone. A run that exploded counts until its last finite probe; `runs`
says how many LR runs each point has, and comparisons use only the steps where every run of both arms
has one (`common_steps`).

An arm is the runs that differ only in learning rate and seed; a study (`studies`) is the runs that
differ only in norm, weight decay, LR and seed, so its arms are comparable. The paper's five figures are
the `PAPER_PAIRS` of arms; the report draws each pair it finds.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lightning_app.report.figures import band, finite, norm_colour, save_figure  # noqa: E402
from lightning_app.report.groups import grouped  # noqa: E402
from lightning_app.report.runs import RunRecord, numeric_key  # noqa: E402

QUANTITIES = (("loss", "loss landscape", "L(θ − η·g; B)"),
              ("grad_pred", "gradient predictiveness", "‖∇L(θ − η·g; B) − g‖"))


@dataclass(frozen=True)
class PaperPair:
    """One of the paper's landscape figures: `first` drawn against `second`, both with or without L2."""

    figure: str
    first: str
    second: str
    regularized: bool

    def arm(self, norm: str, l2: float) -> tuple[str, float]:
        return norm, (l2 if self.regularized else 0.0)

    @property
    def label(self) -> str:
        return f"{self.figure}: {self.first} vs {self.second}" + (" under L2" if self.regularized else "")


PAPER_PAIRS = (PaperPair("Figure 6", "gn", "bn", False), PaperPair("Figure 7", "gn", "none", False),
               PaperPair("Figure 8", "gn", "bn", True), PaperPair("Figure 9", "gn_plus_gn_first", "gn", False),
               PaperPair("Figure 10", "gn_plus_gn_first", "gn", True))


@dataclass(frozen=True)
class Band:
    steps: np.ndarray
    low: np.ndarray
    high: np.ndarray
    runs: np.ndarray  # LR runs with a finite value at each step
    lrs: tuple[float, ...]

    @property
    def complete(self) -> np.ndarray:
        """The steps where every LR run of the arm has a value."""
        return self.steps[self.runs == len(self.lrs)]

    def at(self, steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        index = np.searchsorted(self.steps, steps)
        return self.low[index], self.high[index]


def run_band(run: RunRecord, quantity: str) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(steps, low, high) of one run: the probe's extremes over η, or the training loss (low = high)."""
    if quantity != "train_loss":
        return band(run, quantity)
    series = run.metrics.get("train/loss")
    return None if series is None else (series.steps, finite(series.values), finite(series.values))


def lr_band(runs: list[RunRecord], quantity: str) -> Band | None:
    """The band over step sizes and learning rates of one arm and seed (module docstring)."""
    found = [(run, b) for run in runs if (b := run_band(run, quantity)) is not None]
    if not found:
        return None
    steps = np.array(sorted(set().union(*(b[0].tolist() for _, b in found))), dtype=np.int64)
    lows = np.full((len(found), len(steps)), np.nan)
    highs = np.full((len(found), len(steps)), np.nan)
    for row, (_, (s, low, high)) in enumerate(found):
        index = np.searchsorted(steps, s)
        lows[row, index], highs[row, index] = low, high
    counted = np.isfinite(lows) & np.isfinite(highs)
    keep = counted.any(axis=0)  # only steps some run counts: no all-NaN column reaches nanmin (its warning)
    low = np.nanmin(np.where(counted, lows, np.nan)[:, keep], axis=0)
    high = np.nanmax(np.where(counted, highs, np.nan)[:, keep], axis=0)
    lrs = tuple(sorted(float(run.axis("lr")) for run, _ in found))
    return Band(steps[keep], low, high, counted.sum(axis=0)[keep], lrs)


def common_steps(*bands: Band) -> np.ndarray:
    """The probed steps at which every LR run of every band has a value."""
    steps = bands[0].complete
    for other in bands[1:]:
        steps = np.intersect1d(steps, other.complete)
    return steps


def weight_decay(run: RunRecord) -> float:
    return float(run.axis("weight_decay") or 0.0)


@dataclass
class LandscapeStudy:
    """Runs that differ only in norm, weight decay, LR and seed, indexed by arm (norm, weight decay) and seed."""

    runs: list[RunRecord]

    def __post_init__(self):
        self.arms: dict[tuple[str, float], dict[int, list[RunRecord]]] = defaultdict(lambda: defaultdict(list))
        for run in self.runs:
            self.arms[(run.axis("norm"), weight_decay(run))][run.axis("seed")].append(run)

    @property
    def seeds(self) -> list:
        return sorted({seed for by_seed in self.arms.values() for seed in by_seed}, key=numeric_key)

    @property
    def l2_values(self) -> list[float]:
        """The non-zero weight decays of the study, each an 'under L2' setting."""
        return sorted({wd for _, wd in self.arms if wd > 0})

    def band(self, arm: tuple[str, float], seed, quantity: str) -> Band | None:
        runs = self.arms.get(arm, {}).get(seed)
        return lr_band(runs, quantity) if runs else None

    def pairs(self) -> list[tuple[PaperPair, float]]:
        """The paper's figures this study can draw: both arms present, with ≥ 2 LRs in some seed each.
        An 'under L2' figure is drawn once per non-zero weight decay."""
        drawable = []
        for pair in PAPER_PAIRS:
            for l2 in (self.l2_values if pair.regularized else [0.0]):
                arms = (pair.arm(pair.first, l2), pair.arm(pair.second, l2))
                if all(any(len({r.axis("lr") for r in runs}) > 1 for runs in self.arms.get(a, {}).values())
                       for a in arms):
                    drawable.append((pair, l2))
        return drawable


def studies(runs: list[RunRecord]) -> list[LandscapeStudy]:
    """The landscape studies among `runs`: groups that differ only in norm, weight decay, LR and seed,
    whose runs have landscape probes and that can draw at least one of the paper's figures."""
    found = []
    for group in grouped(runs, "norm", "weight_decay", "lr", "seed"):
        probed = [run for run in group.runs if band(run, "loss") is not None]
        study = LandscapeStudy(probed)
        if probed and study.pairs():
            found.append(study)
    return found


LOG_SCALE_RATIO = 10.0  # arms whose highest values differ more than this share a log axis


def _needs_log_scale(study: LandscapeStudy, arms: list, quantity: str) -> bool:
    """True when one arm's band reaches more than LOG_SCALE_RATIO × the other's highest value: on a linear
    axis the lower band would be a flat line (no normalization against GN). Values must be positive."""
    tops, bottoms = [], []
    for arm in arms:
        bands = [b for seed in study.seeds if (b := study.band(arm, seed, quantity)) is not None]
        if bands:
            tops.append(max(float(np.nanmax(b.high)) for b in bands))
            bottoms.append(min(float(np.nanmin(b.low)) for b in bands))
    return len(tops) == 2 and min(bottoms) > 0 and max(tops) > LOG_SCALE_RATIO * min(tops)


def plot_pair(study: LandscapeStudy, pair: PaperPair, l2: float, path: Path, title: str) -> Path | None:
    """Left the loss landscape, right the gradient predictiveness, against training step: for each of the
    pair's two norms, the band of its first seed that has one filled (the paper ran one seed) and the band
    edges of every further seed as thin dashed lines. Series carry gids `band:<norm>:s<seed>`,
    `low:<norm>:s<seed>`, `high:<norm>:s<seed>`."""
    arms = [pair.arm(pair.first, l2), pair.arm(pair.second, l2)]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.4))
    drawn = False
    for ax, (quantity, panel, ylabel) in zip(axes, QUANTITIES):
        for arm in arms:
            colour = norm_colour(arm[0])
            bands = [(seed, b) for seed in study.seeds if (b := study.band(arm, seed, quantity)) is not None]
            for i, (seed, b) in enumerate(bands):
                drawn = True
                gid = f"{arm[0]}:s{seed}"
                if i == 0:
                    ax.fill_between(b.steps, b.low, b.high, color=colour, alpha=0.35, linewidth=0,
                                    label=f"{arm[0]} (seed {seed})", gid=f"band:{gid}")
                style = dict(color=colour, linewidth=0.9 if i == 0 else 0.7, linestyle="-" if i == 0 else "--",
                             alpha=1.0 if i == 0 else 0.6)
                ax.plot(b.steps, b.low, gid=f"low:{gid}", **style)
                ax.plot(b.steps, b.high, gid=f"high:{gid}", **style)
                if i == 1:
                    ax.plot([], [], color=colour, linestyle="--", linewidth=0.7, label=f"{arm[0]} (other seeds)")
        log = _needs_log_scale(study, arms, quantity)
        ax.set(title=panel + (" (log scale)" if log else ""), xlabel="training step",
               ylabel=f"{ylabel}: min–max over η and LRs", yscale="log" if log else "linear")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if not drawn:
        plt.close(fig)
        return None
    setting = f"L2 {l2:g}" if pair.regularized else "no L2"
    fig.suptitle(f"GN paper {pair.figure}, laptop version: {pair.first} vs {pair.second}, {setting} · {title}",
                 fontsize=10)
    return save_figure(fig, path)
