"""The landscape study's claims as the report prints them, row by row, and the rules behind them at their
boundaries (landscape_claims.py's docstring): the steps compared, early and middle, strictly wider and
strictly above, ratios of exactly 1, 0.9 and 1.1, Table 1's drop of exactly 1 point and its table, Figure
4's gap of exactly 0, and studies that lack a seed, an LR, an arm or an accuracy. Also the per-run numbers
other claims read (`run_select.py`) on short or empty series. Every expected value is a hand computation."""
import numpy as np
import pytest

from lightning_app.report import run_select
from lightning_app.report.claims import NOT_HELD, Claim, SeedResult, claims_markdown
from lightning_app.report.landscape_claims import (Comparison, Table1, _narrower, _wider, _widens, gn_beats_none_claim,
                                                   landscape_claims, table1, table1_claims, table1_markdown)
from lightning_app.report.lr_bands import Band, studies
from lightning_app.report.runs import load_runs
from tests.lightning_app.report.report_runs import write_run
from tests.lightning_app.report.test_report_landscape_study import constant, landscape_rows, study_root, write_arm

L2 = 5e-5


def test_the_claims_table_of_the_study_row_by_row(tmp_path):
    """Sources are the paper's figure and table labels (Figures 6–10, Table 1, appendix A.1's Figure 4);
    numbers as computed by hand in test_report_landscape_study.py."""
    runs, _ = load_runs(study_root(tmp_path))
    (study,) = studies(runs)
    claims = landscape_claims(study) + table1_claims(table1(study)) + gn_beats_none_claim(study)
    wider = "(% of steps wider)"
    assert claims_markdown(claims).splitlines() == [
        "| source | claim | number (condition) | per seed | verdict |",
        "|---|---|---|---|---|",
        f"| Figure 6 | GN's loss landscape has a wider range than BN's | probe: width ratio GN/BN {wider} (> 1 and "
        "> 50 %) | s0: 2.00 (100 %); s1: 2.00 (100 %) | **held (2/2 seeds)** |",
        "| Figure 6 | GN's minimum loss is constantly higher than BN's | probe: % of steps GN's band minimum > BN's "
        "(≥ 90 %) | s0: 100 %; s1: 100 % | **held (2/2 seeds)** |",
        "| Figure 6 | early in training GN's minimum loss is even higher than BN's maximum | probe: % of early steps "
        "GN's band minimum > BN's band maximum (> 50 %) | s0: 100 %; s1: 100 % | **held (2/2 seeds)** |",
        f"| Figure 6 | GN's gradient predictiveness has a wider range than BN's | probe: width ratio GN/BN {wider} "
        "(> 1 and > 50 %) | s0: 2.00 (100 %); s1: 2.00 (100 %) | **held (2/2 seeds)** |",
        "| Figure 7 | early in training the network without normalization has a smaller loss landscape range than "
        f"with GN | probe: early width ratio none/GN {wider} (< 1 and < 50 %) | s0: 0.50 (0 %); s1: 0.50 (0 %) | "
        "**held (2/2 seeds)** |",
        "| Figure 7 | in the middle period GN's loss landscape range is smaller than without normalization | probe: "
        f"middle width ratio GN/none {wider} (< 1 and < 50 %) | s0: 0.67 (0 %); s1: 0.67 (0 %) | "
        "**held (2/2 seeds)** |",
        "| Figure 7 | early in training the network without normalization has a smaller gradient predictiveness "
        f"range than with GN | probe: early width ratio none/GN {wider} (< 1 and < 50 %) | s0: 0.50 (0 %); s1: 0.50 "
        "(0 %) | **held (2/2 seeds)** |",
        "| Figure 7 | in the middle period GN's gradient predictiveness range is smaller than without normalization "
        f"| probe: middle width ratio GN/none {wider} (< 1 and < 50 %) | s0: 0.67 (0 %); s1: 0.67 (0 %) | "
        "**held (2/2 seeds)** |",
        "| Figure 8 | L2 5e-05 widens GN's loss landscape range | probe: width ratio GN with L2 / without (≥ 1.1) | "
        "s0: 1.50; s1: 1.05 ✗ | **partly (1/2 seeds)** |",
        "| Figure 8 | L2 5e-05 widens GN's gradient predictiveness range | probe: width ratio GN with L2 / without "
        "(≥ 1.1) | s0: 1.50; s1: 1.05 ✗ | **partly (1/2 seeds)** |",
        "| Figure 8 | L2 5e-05 does not change BN's ranges | probe: width ratio BN with L2 / without (loss landscape "
        "/ gradient predictiveness) (all in [0.9, 1.1]) | s0: 1.00 / 1.00; s1: 1.00 / 1.00 | **held (2/2 seeds)** |",
        f"| Figure 9 | GNPlusGNFirst's loss landscape has a smaller range than GN's | probe: width ratio GNPlus/GN "
        f"{wider} (< 1 and < 50 %) | s0: 0.25 (0 %); s1: 0.25 (0 %) | **held (2/2 seeds)** |",
        "| Figure 9 | GNPlusGNFirst's loss landscape has lower values than GN's | probe: level ratio GNPlus/GN (band "
        "middle) (< 1) | s0: 0.33; s1: 0.33 | **held (2/2 seeds)** |",
        "| Figure 9 | GNPlusGNFirst's gradient predictiveness has a smaller range than GN's | probe: width ratio "
        f"GNPlus/GN {wider} (< 1 and < 50 %) | s0: 0.25 (0 %); s1: 0.25 (0 %) | **held (2/2 seeds)** |",
        "| Figure 9 | GNPlusGNFirst's gradient predictiveness has lower values than GN's | probe: level ratio "
        "GNPlus/GN (band middle) (< 1) | s0: 0.33; s1: 0.33 | **held (2/2 seeds)** |",
        "| Figure 10 | under L2 5e-05, GNPlusGNFirst's ranges do not change | probe: width ratio GNPlus with L2 / "
        "without (loss landscape / gradient predictiveness) (all in [0.9, 1.1]) | s0: 1.00 / 1.00; s1: 0.80 / 0.80 ✗ "
        "| **partly (1/2 seeds)** |",
        "| Table 1 | with L2 5e-05 GN's validation accuracy drops (about 2 points) | accuracy without L2 − with L2 "
        "at lr 0.0002 (points) (≥ 1) | s0: +2.50; s1: +0.50 ✗ | **partly (1/2 seeds)** |",
        "| Table 1 | with L2 5e-05 BN's validation accuracy does not drop | accuracy without L2 − with L2 at lr "
        "0.0002 (points) (< 1) | s0: +0.00; s1: +0.00 | **held (2/2 seeds)** |",
        "| Figure 4 (A.1) | VGG-11 with GN validates better than without normalization | best val. acc. gn − none "
        "at each LR, no L2 (points) (all > 0) | s0: -10.00 / +0.00 ✗; s1: -10.00 / +0.00 ✗ | "
        "**not held (0/2 seeds)** |",
    ]


def test_a_drop_of_exactly_one_point_is_a_drop():
    table = Table1(5e-4, [L2], {("gn", 0.0): {0: 80.0, 1: 80.0}, ("gn", L2): {0: 79.0, 1: 79.5},
                                ("bn", 0.0): {0: 85.0}, ("bn", L2): {0: 84.0}, ("none", L2): {0: 70.0}})
    gn_drop, bn_drop = table1_claims(table)
    assert gn_drop.seeds == {0: SeedResult("+1.00", True), 1: SeedResult("+0.50", False)}
    assert bn_drop.seeds == {0: SeedResult("+1.00", False)}  # "does not drop" means less than 1 point
    assert table.drops("none", L2) == {} and table.drops("lrn", L2) == {}  # no run without L2, or none at all


def small_study(tmp_path, none_accuracy: dict, none_seeds=(0, 1), gn_accuracy=None, l2=False, missing=None):
    """gn and bn at LRs 1e-4 and 2e-4, seeds 0 and 1 (so a Figure 6 study exists), none at the given LRs
    (lr -> best accuracy) in `none_seeds`; `missing`: (norm, lr) of a run, probed, without an accuracy."""
    root = tmp_path / "runs"
    band = {1e-4: constant(1.0, 2.0), 2e-4: constant(1.0, 2.0)}
    for seed in (0, 1):
        for norm in ("gn", "bn"):
            write_arm(root, norm, 0.0, seed, band, accuracy=gn_accuracy or {1e-4: 0.8, 2e-4: 0.8})
            if l2:
                write_arm(root, norm, L2, seed, band)
        if seed in none_seeds:
            write_arm(root, "none", 0.0, seed, {lr: constant(1.0, 2.0) for lr in none_accuracy}, accuracy=none_accuracy)
    if missing:
        norm, lr = missing
        write_run(root, norm, 128, 0, "completed", None, lr=lr, rows=landscape_rows(constant(1.0, 2.0)),
                  model={"weight_decay": 0.0}, run_name=f"{norm}_no_acc", summary={"best_val_acc": None})
    (study,) = studies(load_runs(root)[0])
    return study


def test_gn_beats_none_needs_a_positive_gap_at_every_lr_both_have(tmp_path):
    """none only at lr 1e-4 and only in seed 0: one gap there; 0.5 points holds, 0 does not."""
    (claim,) = gn_beats_none_claim(small_study(tmp_path / "a", {1e-4: 0.795}, none_seeds=(0,)))
    assert claim.seeds == {0: SeedResult("+0.50", True)}
    (claim,) = gn_beats_none_claim(small_study(tmp_path / "b", {1e-4: 0.8, 2e-4: 0.795}))
    assert claim.seeds[0] == SeedResult("+0.00 / +0.50", False) and claim.verdict == NOT_HELD


def test_gn_beats_none_leaves_out_lrs_without_an_accuracy_and_needs_the_none_arm(tmp_path):
    (claim,) = gn_beats_none_claim(small_study(tmp_path / "a", {1e-4: 0.7}, missing=("none", 2e-4)))
    assert claim.seeds[0] == SeedResult("+10.00", True)  # none's lr-2e-4 run has no accuracy: no gap there
    assert gn_beats_none_claim(small_study(tmp_path / "b", {1e-4: 0.7}, none_seeds=())) == []


def test_table1_reads_the_largest_lr_and_needs_an_l2_arm(tmp_path):
    assert table1(small_study(tmp_path / "a", {1e-4: 0.7})) is None  # no L2 runs: no Table 1
    study = small_study(tmp_path / "b", {1e-4: 0.7}, gn_accuracy={1e-4: 0.6, 2e-4: 0.9}, l2=True,
                        missing=("none", 2e-4))
    table = table1(study)
    assert table.lr == 2e-4 and table.accuracy[("gn", 0.0)] == {0: pytest.approx(90.0), 1: pytest.approx(90.0)}


def run_with(tmp_path, **series):
    """One run whose metrics.csv holds `series[key]` at steps 0, 1, ... (and nothing else)."""
    length = max((len(v) for v in series.values()), default=0)
    rows = [{"epoch": 0, "step": i, **{k: v[i] for k, v in series.items() if i < len(v)}} for i in range(length)]
    write_run(tmp_path / "runs", "gn", 128, 0, "completed", None, rows=rows or [{"epoch": 0, "step": 0}],
              summary={"best_val_acc": None})
    (run,) = load_runs(tmp_path / "runs")[0]
    return run


def test_per_run_numbers_on_short_and_empty_series(tmp_path):
    run = run_with(tmp_path / "a", **{"train/loss": [8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0, 1.0],
                                      "train/acc": [0.25, 0.5, 0.75], "grad/norm": [3.0, 1.0, 2.0]})
    assert run_select.final_train_loss(run) == 1.5  # the last quarter: 2 of 8 values
    assert run_select.mean_train_loss(run) == 4.5
    assert run_select.last_train_accuracy(run) == 75.0 and run_select.median_grad_norm(run) == 2.0
    short = run_with(tmp_path / "b", **{"train/loss": [4.0, 3.0, 2.0]})
    assert run_select.final_train_loss(short) == 2.0  # a quarter of 3 is less than one value: the last
    empty = run_with(tmp_path / "c")
    assert [run_select.mean_train_loss(empty), run_select.final_train_loss(empty),
            run_select.last_train_accuracy(empty), run_select.median_grad_norm(empty),
            run_select.percent(empty, "best_val_acc")] == [None] * 5


def band(steps, low, high) -> Band:
    """One arm's band, every LR run (one) present at each step."""
    return Band(np.array(steps), np.array(low, dtype=float), np.array(high, dtype=float), np.ones(len(steps), int),
                (1e-4,))


def test_a_comparison_is_over_the_steps_both_arms_have():
    a, b = band([0, 10, 20, 30], [0, 0, 0, 0], [1, 1, 4, 4]), band([20, 30, 40], [0, 0, 0], [1, 1, 1])
    comparison = Comparison.of(a, b)
    assert comparison.steps.tolist() == [20, 30] and comparison.width_ratio() == 4.0
    assert Comparison.of(a, band([40, 50], [0, 0], [1, 1])) is None and Comparison.of(a, None) is None


def test_early_is_the_first_quarter_of_the_steps_and_middle_the_next_two():
    comparison = Comparison(band([0], [0], [1]), band([0], [0], [1]), np.arange(12))
    assert comparison.part("early").steps.tolist() == [0, 1, 2]
    assert comparison.part("middle").steps.tolist() == [3, 4, 5, 6, 7, 8]


def test_shares_count_strictly_wider_and_strictly_above():
    steps = [0, 1, 2, 3]
    a = band(steps, [1.0, 1.0, 2.0, 0.0], [2.0, 3.0, 2.5, 1.0])  # widths 1, 2, 0.5, 1
    b = band(steps, [1.0, 0.0, 1.0, 0.0], [2.0, 1.0, 1.5, 2.0])  # widths 1, 1, 0.5, 2
    comparison = Comparison.of(a, b)
    assert comparison.share_wider() == 0.25  # only step 1: equal widths are not wider
    assert comparison.share_min_above() == 0.5  # steps 1 and 2: an equal minimum is not above
    assert comparison.share_min_above("high") == 0.25  # step 2: 2.0 > 1.5; step 1's 1.0 is not above 1.0


def judged(width_a, width_b):
    """A comparison whose arm A has widths `width_a` and arm B `width_b` (both from 0) at steps 0, 1, ..."""
    steps = list(range(len(width_a)))
    return Comparison.of(band(steps, [0] * len(steps), width_a), band(steps, [0] * len(steps), width_b))


@pytest.mark.parametrize("width_a,width_b,number,holds", [
    ([3.0, 0.5], [1.0, 1.0], "1.75 (50 %)", False),  # wider on average, but at half the steps only
    ([3.0, 3.0, 0.5, 3.0], [1.0] * 4, "2.38 (75 %)", True),
    ([1.5, 1.5, 0.0], [1.0] * 3, "1.00 (67 %)", False),  # wider at most steps, not on average
])
def test_wider_needs_a_ratio_above_1_and_most_steps(width_a, width_b, number, holds):
    assert _wider(judged(width_a, width_b)) == SeedResult(number, holds)


@pytest.mark.parametrize("width_a,width_b,number,holds", [
    ([1.0, 1.0], [1.0, 1.0], "1.00 (0 %)", False),  # a ratio of exactly 1 is not smaller
    ([0.1, 0.1, 0.1, 5.7], [1.0] * 4, "1.50 (25 %)", False),  # wider on average at few steps
    ([0.1, 0.1, 0.1, 2.0], [1.0] * 4, "0.57 (25 %)", True),
    ([0.1, 2.0], [1.0, 1.0], "1.05 (50 %)", False),
    ([0.1, 1.5], [1.0, 1.0], "0.80 (50 %)", False),  # smaller on average, wider at half the steps
    ([0.2, 1.4, 1.4, 1.4], [2.0] * 4, "0.55 (0 %)", True),
    ([0.1, 2.5, 2.5, 2.5], [2.0] * 4, "0.95 (75 %)", False),  # smaller on average, wider at most steps
])
def test_narrower_needs_a_ratio_below_1_and_few_steps(width_a, width_b, number, holds):
    assert _narrower(judged(width_a, width_b)) == SeedResult(number, holds)


def test_widens_and_unchanged_include_their_bounds(tmp_path):
    assert _widens(judged([1.1], [1.0])) == SeedResult("1.10", True)
    root = tmp_path / "runs"
    for seed, ratio in ((0, 0.9), (1, 1.1)):
        for norm in ("gn", "bn"):
            write_arm(root, norm, 0.0, seed, {lr: constant(0.0, 1.0) for lr in (1e-4, 2e-4)})
            write_arm(root, norm, L2, seed, {lr: constant(0.0, ratio if norm == "bn" else 1.0) for lr in (1e-4, 2e-4)})
    (study,) = studies(load_runs(root)[0])
    bn_unchanged = next(c for c in landscape_claims(study) if c.statement.endswith("does not change BN's ranges"))
    assert bn_unchanged.seeds == {0: SeedResult("0.90 / 0.90", True), 1: SeedResult("1.10 / 1.10", True)}


def test_table1_markdown_leaves_out_absent_norms_and_marks_missing_cells():
    table = Table1(5e-4, [L2], {("bn", 0.0): {0: 85.0, 1: 84.0}, ("bn", L2): {0: 84.0, 1: 83.0},
                                ("gn", 0.0): {0: 80.0}, ("none", L2): {0: 70.0}})
    assert table1_markdown(table, ["bn", "lrn", "gn", "none"]).splitlines() == [
        "| Norm | no L2 | L2 5e-05 | drop (L2 5e-05) |",
        "|---|---|---|---|",
        "| bn | 84.50 ± 0.71 | 83.50 ± 0.71 | 1.00 ± 0.00 |",
        "| gn | 80.00 | — | — |",  # one seed: no spread to give
        "| none | — | 70.00 | — |",
    ]


def test_constantly_higher_means_at_least_90_percent_and_even_higher_compares_with_bns_maximum(tmp_path):
    """Ten probed steps: GN's minimum 1.0 is above BN's 0.5 at 9 of them (at step 90 it is 0.2), never
    above BN's maximum 2.0."""
    root = tmp_path / "runs"
    steps = range(0, 100, 10)
    for norm, bands in (("gn", {s: (0.2 if s == 90 else 1.0, 3.0) for s in steps}),
                        ("bn", {s: (0.5, 2.0) for s in steps})):
        write_arm(root, norm, 0.0, 0, {1e-4: bands, 2e-4: bands})
    (study,) = studies(load_runs(root)[0])
    claims = {c.statement: c for c in landscape_claims(study)}
    assert claims["GN's minimum loss is constantly higher than BN's"].seeds == {0: SeedResult("90 %", True)}
    assert claims["early in training GN's minimum loss is even higher than BN's maximum"].seeds == {
        0: SeedResult("0 %", False)}


def test_even_higher_early_needs_more_than_half_of_the_early_steps(tmp_path):
    """Eight probed steps, early = steps 0 and 10: GN's minimum is above BN's maximum at step 0 only."""
    root = tmp_path / "runs"
    for norm, bands in (("gn", constant(1.0, 3.0, s0=(2.5, 3.0))), ("bn", constant(0.5, 2.0))):
        write_arm(root, norm, 0.0, 0, {1e-4: bands, 2e-4: bands})
    (study,) = studies(load_runs(root)[0])
    claims = {c.statement: c for c in landscape_claims(study)}
    assert claims["early in training GN's minimum loss is even higher than BN's maximum"].seeds == {
        0: SeedResult("50 %", False)}


def test_a_claim_no_seed_could_measure_is_a_row_without_numbers():
    row = claims_markdown([Claim("Figure 9", "c", "m", "k")]).splitlines()[2]
    assert row == "| Figure 9 | c | m (k) | — | **not measured** |"


@pytest.mark.parametrize("actual,wanted,same", [
    (0.1 + 0.2, 0.3, True),  # floats from a YAML file and from arithmetic: equal within rounding
    (1, 1.0, True), (1.0 + 1e-12, 1.0, True), (1.1, 1.0, False),
    ("1.0", 1.0, False), ("gn", "gn", True), (4, 4, True), (4, 8, False),
])
def test_config_values_match_floats_within_rounding_and_other_values_exactly(actual, wanted, same):
    assert run_select.matches(actual, wanted) is same


def test_lower_values_need_a_level_ratio_below_1(tmp_path):
    """Figure 9's "lower values": GNPlus's band at GN's level (ratio 1) in seed 0, 1.5 × it in seed 1."""
    root = tmp_path / "runs"
    for seed, plus in ((0, (1.0, 2.0)), (1, (1.5, 3.0))):
        for norm, bands in (("gn", constant(1.0, 2.0)), ("gn_plus_gn_first", constant(*plus))):
            write_arm(root, norm, 0.0, seed, {1e-4: bands, 2e-4: bands})
    (study,) = studies(load_runs(root)[0])
    lower = next(c for c in landscape_claims(study) if c.statement == "GNPlusGNFirst's loss landscape has lower values "
                                                                       "than GN's")
    assert lower.seeds == {0: SeedResult("1.00", False), 1: SeedResult("1.50", False)}


def test_pick_takes_the_first_matching_run_by_path_and_seeds_sort_numbers_first(tmp_path):
    root = tmp_path / "runs"
    for seed in (10, 9, None):
        write_run(root, "gn", 128, seed, "completed", 0.5, run_name=f"gn_seed_{seed}", rows=[{"epoch": 0, "step": 0}])
    write_run(root, "bn", 128, 2, "completed", 0.5, run_name="bn_seed_2")
    runs = sorted(load_runs(root)[0], key=lambda r: str(r.path), reverse=True)
    assert run_select.pick(runs, norm="gn").path.name == "gn_seed_10"  # "gn_seed_10" < "gn_seed_9" < "gn_seed_None"
    assert run_select.pick(runs, norm="gn", seed=9).path.name == "gn_seed_9"
    assert run_select.pick(runs, norm="lrn") is None
    assert run_select.seeds(runs) == [2, 9, 10, None]  # a run without a seed last
