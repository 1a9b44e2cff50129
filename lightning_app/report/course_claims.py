"""The course report's observations (Sridhar, Azim & Talegaonkar 2018, "A Comparison of Batch Normalization
and Group Normalization", §III) as claims with a number per seed and a verdict (`claims.py`).

The runs are its grid (configs/sweeps/course_report_fashion_mnist.yaml): none and bn at batch 10 / 50 /
100 × lr 1e-3 / 1e-4, and gn at 1 / 4 / 16 groups at batch 50, lr 1e-3. The numbers, each recomputable
from a run's `metrics.csv` and `summary.json` (`run_select.py`):
- **training speed**: the mean of the logged training loss over the run (`train/loss`, logged at the same
  interval in images for every batch size; lower = the loss fell sooner); "faster" compares these as a
  ratio;
- **training accuracy**: `train/acc` of the last epoch, in %;
- **test accuracy**: `test_acc` of summary.json, in %;
- **gradient norm**: the median of `grad/norm` (the gradient's global L2 norm) over the logged steps.
Conditions: "faster" = ratio < 1 in every compared setting; "no advantage" = BN's mean loss at least
0.95 × no-norm's (less than 5 % lower); "hardly change" / "about the same" = within 1 point.
"""
from __future__ import annotations

from typing import Callable

from lightning_app.report.claims import Claim, SeedResult
from lightning_app.report.run_select import (last_train_accuracy, mean_train_loss, median_grad_norm, percent, pick,
                                             seeds)
from lightning_app.report.runs import RunRecord

SOURCE = "course report §III"
GROUPS = (1, 4, 16)
SAME_POINTS = 1.0
NO_ADVANTAGE = 0.95


def _ratio(runs, number, a: dict, b: dict) -> float | None:
    run_a, run_b = pick(runs, **a), pick(runs, **b)
    values = [number(r) if r is not None else None for r in (run_a, run_b)]
    return None if None in values or values[1] == 0 else values[0] / values[1]


def _all(ratios: list, holds: Callable[[float], bool]) -> SeedResult | None:
    if not ratios or None in ratios:
        return None
    return SeedResult(" / ".join(f"{r:.2f}" for r in ratios), all(holds(r) for r in ratios))


def _bn_faster(runs) -> SeedResult | None:
    return _all([_ratio(runs, mean_train_loss, dict(norm="bn", batch_size=bs, lr=lr), dict(norm="none",
                                                                                        batch_size=bs, lr=lr))
                 for bs in (50, 100) for lr in (1e-3, 1e-4)], lambda r: r < 1)


def _small_lr_slower(runs) -> SeedResult | None:
    return _all([_ratio(runs, mean_train_loss, dict(norm=norm, batch_size=bs, lr=1e-4),
                        dict(norm=norm, batch_size=bs, lr=1e-3))
                 for norm in ("none", "bn") for bs in (10, 50, 100)], lambda r: r > 1)


def _bn_no_gain_at_10(runs) -> SeedResult | None:
    return _all([_ratio(runs, mean_train_loss, dict(norm="bn", batch_size=10, lr=lr),
                        dict(norm="none", batch_size=10, lr=lr)) for lr in (1e-3, 1e-4)],
                lambda r: r >= NO_ADVANTAGE)


def _gn_runs(runs) -> list[RunRecord] | None:
    found = [pick(runs, norm="gn", groups=g, batch_size=50, lr=1e-3) for g in GROUPS]
    return None if None in found else found


def _gn_train_below(runs) -> SeedResult | None:
    gn = _gn_runs(runs)
    others = [pick(runs, norm=n, batch_size=50, lr=1e-3) for n in ("none", "bn")]
    if gn is None or None in others:
        return None
    best_other = max(last_train_accuracy(r) for r in others)
    gaps = [last_train_accuracy(r) - best_other for r in gn]
    return SeedResult(" / ".join(f"{g:+.2f}" for g in gaps), all(g < 0 for g in gaps))


def _groups_hardly_matter(runs) -> SeedResult | None:
    gn = _gn_runs(runs)
    if gn is None:
        return None
    accuracies = [last_train_accuracy(r) for r in gn]
    spread = max(accuracies) - min(accuracies)
    return SeedResult(f"{spread:.2f}", spread <= SAME_POINTS)


def _test_same_with_gn(runs) -> SeedResult | None:
    gn, none = _gn_runs(runs), pick(runs, norm="none", batch_size=50, lr=1e-3)
    if gn is None or none is None or percent(none, "test_acc") is None:
        return None
    gaps = [percent(r, "test_acc") - percent(none, "test_acc") for r in gn]
    return SeedResult(" / ".join(f"{g:+.2f}" for g in gaps), all(abs(g) <= SAME_POINTS for g in gaps))


def _gn_larger_gradients(runs) -> SeedResult | None:
    ratio = _ratio(runs, median_grad_norm, dict(norm="gn", groups=4, batch_size=50, lr=1e-3),
                   dict(norm="none", batch_size=50, lr=1e-3))
    return None if ratio is None else SeedResult(f"{ratio:.2f}", ratio > 1)


CLAIMS = (
    ("BN trains faster than no normalization (batch 50 and 100, lr 1e-3 and 1e-4)",
     "mean training loss bn/none at (bs 50, 1e-3), (50, 1e-4), (100, 1e-3), (100, 1e-4)", "all < 1", _bn_faster),
    ("lr 1e-4 converges slower than 1e-3", "mean training loss 1e-4/1e-3, none then bn, at bs 10, 50, 100",
     "all > 1", _small_lr_slower),
    ("BN at batch < 20 gives no advantage in convergence", "mean training loss bn/none at bs 10, lr 1e-3 and "
     "1e-4", f"all ≥ {NO_ADVANTAGE}", _bn_no_gain_at_10),
    ("GN's training accuracy is below no normalization's and BN's", "last-epoch training accuracy of gn "
     "(G = 1, 4, 16) − the better of none and bn, bs 50, lr 1e-3 (points)", "all < 0", _gn_train_below),
    ("the number of groups (1 → 16) hardly changes GN's training accuracy", "max − min over G = 1, 4, 16 of "
     "the last-epoch training accuracy (points)", f"≤ {SAME_POINTS:g}", _groups_hardly_matter),
    ("test accuracy is about the same with or without GN", "test accuracy of gn (G = 1, 4, 16) − none's, bs 50, "
     "lr 1e-3 (points)", f"all within ± {SAME_POINTS:g}", _test_same_with_gn),
    ("with GN the gradient's L2 norm is larger than without normalization", "median grad/norm gn (G = 4) / none, "
     "bs 50, lr 1e-3", "> 1", _gn_larger_gradients),
)


def course_claims(runs: list[RunRecord]) -> list[Claim]:
    """Every claim whose runs exist in at least one seed (the others are left out)."""
    claims = []
    for statement, measure, condition, judge in CLAIMS:
        results = {}
        for seed in seeds(runs):
            result = judge([r for r in runs if r.axis("seed") == seed])
            if result is not None:
                results[seed] = result
        if results:
            claims.append(Claim(SOURCE, statement, measure, condition, results))
    return claims
