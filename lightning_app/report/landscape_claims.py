"""The GN paper's landscape claims (Gunawan, Yin & Zhang 2022, §3.2, appendix A.3–A.6: Figures 6–10) and
its Table 1, each as a number per seed from the bands of `lr_bands.py`, with a verdict (`claims.py`).

Every number is recomputable from the runs' `metrics.csv` (`landscape/<quantity>_min|max`, or `train/loss`
for the paper's own measure):
- the band of an arm (a norm at one weight decay) at probed step t: low(t) = the lowest
  `<quantity>_min` over its LR runs, high(t) = the highest `<quantity>_max`; width(t) = high(t) − low(t);
- S: the probed steps where every LR run of both compared arms has a value; early = the first quarter
  of S (by count), middle = its second and third quarters (the paper's "early" is its first ~1,000
  of 7,820 steps, its "middle" the time after that before convergence);
- **width ratio** A/B = mean over S of width_A ÷ mean over S of width_B, with **% wider** = the share
  of S where width_A(t) > width_B(t);
- **level ratio** A/B = mean over S of (low_A + high_A)/2 ÷ the same for B ("lower values");
- **% min above** = the share of S where low_A(t) > low_B(t) (or > high_B(t): "even above its maximum").
- Each loss claim is measured twice: on the probe's bands (Santurkar et al.'s definition, which the
  paper's text cites) and on the measure of the paper's code, the spread of the logged training loss
  across the LR runs (`train/loss`; there the band has no step-size part).
- Table 1: the best validation accuracy (the paper reads its best epoch) at the study's largest LR (the
  paper's 5e-4); the **drop** under L2 = accuracy without L2 − accuracy with it, in points.
Conditions: "wider"/"smaller" = ratio > 1 (< 1) and % wider > 50 (< 50); "constantly" = ≥ 90 % of S;
"widens" under L2 = width ratio ≥ 1.1, "does not change" = the width ratios of both quantities within
[0.9, 1.1]; an accuracy "drop" = ≥ 1 point (the paper's GN drop is 2.02, its BN drop 0).
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from lightning_app.report.claims import Claim, SeedResult
from lightning_app.report.lr_bands import Band, LandscapeStudy, common_steps, weight_decay

UNCHANGED = (0.9, 1.1)  # a width ratio inside this counts as "does not change"
WIDENS = UNCHANGED[1]
DROP_POINTS = 1.0  # an accuracy change of at least this many points counts as a drop
CONSTANTLY = 0.9


@dataclass(frozen=True)
class Comparison:
    """Arm A against arm B in one quantity over the steps both have (S), and its early/middle parts."""

    a: Band
    b: Band
    steps: np.ndarray

    @classmethod
    def of(cls, a: Band | None, b: Band | None) -> Comparison | None:
        if a is None or b is None:
            return None
        steps = common_steps(a, b)
        return cls(a, b, steps) if len(steps) else None

    def part(self, which: str) -> Comparison:
        quarters = np.array_split(self.steps, 4)
        steps = quarters[0] if which == "early" else np.concatenate(quarters[1:3])
        return Comparison(self.a, self.b, steps)

    def _edges(self):
        return (*self.a.at(self.steps), *self.b.at(self.steps))

    def width_ratio(self) -> float:
        low_a, high_a, low_b, high_b = self._edges()
        return float(np.mean(high_a - low_a) / np.mean(high_b - low_b))

    def share_wider(self) -> float:
        low_a, high_a, low_b, high_b = self._edges()
        return float(np.mean((high_a - low_a) > (high_b - low_b)))

    def level_ratio(self) -> float:
        low_a, high_a, low_b, high_b = self._edges()
        return float(np.mean(low_a + high_a) / np.mean(low_b + high_b))

    def share_min_above(self, edge: str = "low") -> float:
        low_a, _, low_b, high_b = self._edges()
        return float(np.mean(low_a > (low_b if edge == "low" else high_b)))


def _wider(c: Comparison) -> SeedResult:
    ratio, share = c.width_ratio(), c.share_wider()
    return SeedResult(f"{ratio:.2f} ({100 * share:.0f} %)", ratio > 1 and share > 0.5)


def _narrower(c: Comparison) -> SeedResult:
    ratio, share = c.width_ratio(), c.share_wider()
    return SeedResult(f"{ratio:.2f} ({100 * share:.0f} %)", ratio < 1 and share < 0.5)


def _per_seed(study: LandscapeStudy, arms: tuple, quantity: str, judge, part: str | None = None) -> dict:
    results = {}
    for seed in study.seeds:
        comparison = Comparison.of(*(study.band(arm, seed, quantity) for arm in arms))
        if comparison is not None:
            comparison = comparison.part(part) if part else comparison
            if len(comparison.steps):
                results[seed] = judge(comparison)
    return results


def _unchanged(study: LandscapeStudy, norm: str, l2: float, quantities: tuple[str, ...]) -> dict:
    """Per seed: the L2/no-L2 width ratio of each quantity, holding when all are within UNCHANGED."""
    results = {}
    for seed in study.seeds:
        ratios = []
        for quantity in quantities:
            c = Comparison.of(study.band((norm, l2), seed, quantity), study.band((norm, 0.0), seed, quantity))
            if c is not None:
                ratios.append(c.width_ratio())
        if len(ratios) == len(quantities):
            results[seed] = SeedResult(" / ".join(f"{r:.2f}" for r in ratios),
                                       all(UNCHANGED[0] <= r <= UNCHANGED[1] for r in ratios))
    return results


def _widens(c: Comparison) -> SeedResult:
    ratio = c.width_ratio()
    return SeedResult(f"{ratio:.2f}", ratio >= WIDENS)


WIDTH = "width ratio {a}/{b} (% of steps wider)"
# What a claim's band is measured on: the probe (Santurkar et al.'s same-batch steps along the gradient),
# or the paper's own code (the training loss across the LR runs; it has no gradient counterpart here).
MEASURES = {"probe": {"loss": "loss landscape", "grad_pred": "gradient predictiveness"},
            "paper_code": {"train_loss": "loss landscape"}}
MEASURE_LABELS = {"probe": "probe", "paper_code": "paper's code: train/loss over LRs"}


def landscape_claims(study: LandscapeStudy, measure: str = "probe") -> list[Claim]:
    """Every claim of Figures 6–10 the study can measure on `measure`'s bands (a claim whose arms are
    missing is left out)."""
    claims: list[Claim] = []
    quantities = MEASURES[measure]
    label = MEASURE_LABELS[measure]

    def add(source, statement, number, condition, seeds):
        if seeds:
            claims.append(Claim(source, statement, f"{label}: {number}", condition, seeds))

    def clean(norm):  # an arm without L2
        return norm, 0.0

    gn_bn = (clean("gn"), clean("bn"))
    for quantity, name in quantities.items():
        add("Figure 6", f"GN's {name} has a wider range than BN's", WIDTH.format(a="GN", b="BN"), "> 1 and > 50 %",
            _per_seed(study, gn_bn, quantity, _wider))
        if quantity == "grad_pred":
            continue
        add("Figure 6", "GN's minimum loss is constantly higher than BN's", "% of steps GN's band minimum > BN's",
            "≥ 90 %", _per_seed(study, gn_bn, quantity, lambda c: SeedResult(f"{100 * c.share_min_above():.0f} %",
                                                                             c.share_min_above() >= CONSTANTLY)))
        add("Figure 6", "early in training GN's minimum loss is even higher than BN's maximum",
            "% of early steps GN's band minimum > BN's band maximum", "> 50 %",
            _per_seed(study, gn_bn, quantity, lambda c: SeedResult(f"{100 * c.share_min_above('high'):.0f} %",
                                                                   c.share_min_above("high") > 0.5), part="early"))
    for quantity, name in quantities.items():
        add("Figure 7", f"early in training the network without normalization has a smaller {name} range than "
            "with GN", "early " + WIDTH.format(a="none", b="GN"), "< 1 and < 50 %",
            _per_seed(study, (clean("none"), clean("gn")), quantity, _narrower, part="early"))
        add("Figure 7", f"in the middle period GN's {name} range is smaller than without normalization",
            "middle " + WIDTH.format(a="GN", b="none"), "< 1 and < 50 %",
            _per_seed(study, (clean("gn"), clean("none")), quantity, _narrower, part="middle"))
    names = " / ".join(quantities.values())
    for l2 in study.l2_values:
        for quantity, name in quantities.items():
            add("Figure 8", f"L2 {l2:g} widens GN's {name} range", "width ratio GN with L2 / without",
                f"≥ {WIDENS}", _per_seed(study, (("gn", l2), ("gn", 0.0)), quantity, _widens))
        add("Figure 8", f"L2 {l2:g} does not change BN's ranges", f"width ratio BN with L2 / without ({names})",
            f"all in [{UNCHANGED[0]}, {UNCHANGED[1]}]", _unchanged(study, "bn", l2, tuple(quantities)))
    pair = (clean("gn_plus_gn_first"), clean("gn"))
    for quantity, name in quantities.items():
        add("Figure 9", f"GNPlusGNFirst's {name} has a smaller range than GN's", WIDTH.format(a="GNPlus", b="GN"),
            "< 1 and < 50 %", _per_seed(study, pair, quantity, _narrower))
        add("Figure 9", f"GNPlusGNFirst's {name} has lower values than GN's", "level ratio GNPlus/GN (band middle)",
            "< 1", _per_seed(study, pair, quantity, lambda c: SeedResult(f"{c.level_ratio():.2f}", c.level_ratio() < 1)))
    for l2 in study.l2_values:
        add("Figure 10", f"under L2 {l2:g}, GNPlusGNFirst's ranges do not change",
            f"width ratio GNPlus with L2 / without ({names})", f"all in [{UNCHANGED[0]}, {UNCHANGED[1]}]",
            _unchanged(study, "gn_plus_gn_first", l2, tuple(quantities)))
    return claims


@dataclass(frozen=True)
class Table1:
    """Best validation accuracy (%) per norm and weight decay at the largest LR, per seed."""

    lr: float
    l2_values: list[float]
    accuracy: dict  # (norm, weight decay) -> {seed: accuracy in %}

    def drops(self, norm: str, l2: float) -> dict:
        """Per seed: accuracy without L2 − with it, in points (seeds that have both)."""
        without, with_l2 = self.accuracy.get((norm, 0.0), {}), self.accuracy.get((norm, l2), {})
        return {seed: without[seed] - with_l2[seed] for seed in without if seed in with_l2}


def table1(study: LandscapeStudy) -> Table1 | None:
    lrs = {float(run.axis("lr")) for run in study.runs}
    if not lrs or not study.l2_values:
        return None
    lr = max(lrs)
    accuracy: dict = {}
    for run in study.runs:
        value = run.accuracy("best_val_acc")
        if float(run.axis("lr")) == lr and value is not None:
            accuracy.setdefault((run.axis("norm"), weight_decay(run)), {})[run.axis("seed")] = 100 * value
    return Table1(lr, study.l2_values, accuracy)


def table1_claims(table: Table1) -> list[Claim]:
    claims = []
    for l2 in table.l2_values:
        for norm, statement, holds in (
                ("gn", f"with L2 {l2:g} GN's validation accuracy drops (about 2 points)", lambda d: d >= DROP_POINTS),
                ("bn", f"with L2 {l2:g} BN's validation accuracy does not drop", lambda d: d < DROP_POINTS)):
            drops = table.drops(norm, l2)
            if drops:
                claims.append(Claim("Table 1", statement, f"accuracy without L2 − with L2 at lr {table.lr:g} (points)",
                                    f"{'≥' if norm == 'gn' else '<'} {DROP_POINTS:g}",
                                    {seed: SeedResult(f"{d:+.2f}", holds(d)) for seed, d in sorted(drops.items())}))
    return claims


def gn_beats_none_claim(study: LandscapeStudy) -> list[Claim]:
    """GN paper, appendix A.1 (Figure 4, VGG-11): with GN the network validates better than without
    normalization. Number: GN's best validation accuracy − no normalization's at each LR, without L2."""
    results = {}
    for seed in study.seeds:
        best = {norm: {float(r.axis("lr")): r.accuracy("best_val_acc")
                       for r in study.arms.get((norm, 0.0), {}).get(seed, [])} for norm in ("gn", "none")}
        lrs = sorted(set(best["gn"]) & set(best["none"]))
        gaps = [100 * (best["gn"][lr] - best["none"][lr]) for lr in lrs
                if best["gn"][lr] is not None and best["none"][lr] is not None]
        if gaps:
            results[seed] = SeedResult(" / ".join(f"{g:+.2f}" for g in gaps), all(g > 0 for g in gaps))
    return [Claim("Figure 4 (A.1)", "VGG-11 with GN validates better than without normalization",
                  "best val. acc. gn − none at each LR, no L2 (points)", "all > 0", results)] if results else []


def table1_markdown(table: Table1, norms: list[str]) -> str:
    """Rows norm; columns without L2, each L2 value, and the drop; mean ± sample std over seeds."""
    def cell(values) -> str:
        values = list(values)
        if not values:
            return "—"
        mean = statistics.fmean(values)
        return f"{mean:.2f} ± {statistics.stdev(values):.2f}" if len(values) > 1 else f"{mean:.2f}"

    header = ["Norm", "no L2", *(f"L2 {l2:g}" for l2 in table.l2_values), *(f"drop (L2 {l2:g})" for l2 in
                                                                            table.l2_values)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for norm in norms:
        if not any((norm, wd) in table.accuracy for wd in [0.0, *table.l2_values]):
            continue
        row = [norm, cell(table.accuracy.get((norm, 0.0), {}).values()),
               *(cell(table.accuracy.get((norm, l2), {}).values()) for l2 in table.l2_values),
               *(cell(table.drops(norm, l2).values()) for l2 in table.l2_values)]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
