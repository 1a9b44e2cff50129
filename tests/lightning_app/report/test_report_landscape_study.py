"""The GN paper's landscape analysis in the report (Figures 6–10, Table 1): the bands over step sizes and
learning rates, the paired figures' plotted series and every claim's number, against hand computations
on generated metrics whose values are chosen so each number is easy to compute here."""
import warnings

import numpy as np
import pytest

from lightning_app.report import claims as claims_module
from lightning_app.report.claims import HELD, NOT_HELD, NOT_MEASURED, PARTLY, Claim, SeedResult
from lightning_app.report.command import write_report
from lightning_app.report.landscape_claims import (gn_beats_none_claim, landscape_claims, table1, table1_claims,
                                                   table1_markdown)
from lightning_app.report.figures import norm_colour
from lightning_app.report.lr_bands import PAPER_PAIRS, QUANTITIES, lr_band, plot_pair, studies
from lightning_app.report.runs import load_runs
from tests.lightning_app.report.report_runs import write_run
from tests.lightning_app.report.test_report_figures import band_edges

STEPS = list(range(0, 80, 10))  # 8 probed steps: early = the first 2, middle = the next 4
L2 = 5e-5


def landscape_rows(loss: dict, grad: dict | None = None) -> list[dict]:
    """Probe rows: `loss[step] = (min, max)`; the gradient predictiveness band defaults to 10 × the loss band."""
    grad = grad or {s: (10 * lo, 10 * hi) for s, (lo, hi) in loss.items()}
    return [{"epoch": 0, "step": s, "landscape/loss_min": loss[s][0], "landscape/loss_max": loss[s][1],
             "landscape/grad_pred_min": grad[s][0], "landscape/grad_pred_max": grad[s][1]} for s in sorted(loss)]


def constant(low: float, high: float, **at_steps) -> dict:
    """(low, high) at every step, except `s<step>=(low, high)` overrides."""
    band = {s: (low, high) for s in STEPS}
    band.update({int(k[1:]): v for k, v in at_steps.items()})
    return band


def write_arm(root, norm, wd, seed, bands_by_lr: dict, accuracy: dict | None = None, status="completed"):
    """One arm and seed: a run per LR with the given loss bands (and best validation accuracies)."""
    for lr, loss in bands_by_lr.items():
        acc = (accuracy or {}).get(lr, 0.8)
        write_run(root, norm, 128, seed, status, acc, lr=lr, rows=landscape_rows(loss), model={"weight_decay": wd},
                  run_name=f"{norm}_wd{wd:g}_lr{lr:g}_s{seed}", summary={"best_val_acc": acc})


def test_band_is_the_extremes_over_learning_rates_and_drops_a_run_after_it_exploded(tmp_path):
    root = tmp_path / "runs"
    write_arm(root, "gn", 0.0, 0, {1e-4: constant(1.0, 2.0, s10=(0.5, 2.5)), 2e-4: constant(1.5, 3.0)})
    # the third LR run explodes after step 30: its last probes are NaN
    rows = landscape_rows(constant(0.2, 9.0))
    for row in rows[4:]:
        row["landscape/loss_min"] = row["landscape/loss_max"] = float("nan")
    write_run(root, "gn", 128, 0, "exploded", None, lr=3e-4, rows=rows, model={"weight_decay": 0.0},
              run_name="gn_exploded")
    runs, _ = load_runs(root)
    band = lr_band(runs, "loss")
    assert band.lrs == (1e-4, 2e-4, 3e-4)
    assert band.steps.tolist() == STEPS
    # steps 0–30: all three runs; min of mins, max of maxes (step 10: the first run's 0.5 and the third's 9.0)
    assert band.low[:4].tolist() == [0.2, 0.2, 0.2, 0.2] and band.high[:4].tolist() == [9.0] * 4
    # from step 40 only the two finite runs count
    assert band.low[4:].tolist() == [1.0] * 4 and band.high[4:].tolist() == [3.0] * 4
    assert band.runs.tolist() == [3, 3, 3, 3, 2, 2, 2, 2]
    assert band.complete.tolist() == [0, 10, 20, 30]


def study_root(tmp_path):
    """bn, gn, none, gn_plus_gn_first × no L2 / L2 × 2 LRs × seeds 0, 1, with bands chosen per claim (the
    comments give each arm's band over its two LRs)."""
    root = tmp_path / "runs"
    for seed in (0, 1):
        # gn: band [1, 3] (width 2), early steps 0 and 10 at [2, 4]; with L2 wider in seed 0 only
        write_arm(root, "gn", 0.0, seed, {1e-4: constant(1.0, 2.0, s0=(2.0, 3.0), s10=(2.0, 3.0)),
                                          2e-4: constant(1.5, 3.0, s0=(2.5, 4.0), s10=(2.5, 4.0))},
                  accuracy={1e-4: 0.70, 2e-4: 0.80})
        gn_l2 = 4.0 if seed == 0 else 3.1  # band [1, gn_l2]: seed 0 width 3 (ratio 1.5), seed 1 2.1 (ratio 1.05)
        write_arm(root, "gn", L2, seed, {1e-4: constant(1.0, 2.0), 2e-4: constant(1.5, gn_l2)},
                  accuracy={1e-4: 0.70, 2e-4: 0.775 if seed == 0 else 0.795})  # drops 2.5 and 0.5 points
        # bn: band [0.5, 1.5] (width 1); L2 leaves it alone
        for wd in (0.0, L2):
            write_arm(root, "bn", wd, seed, {1e-4: constant(0.5, 1.0), 2e-4: constant(0.7, 1.5)},
                      accuracy={1e-4: 0.8, 2e-4: 0.85})
        # none: early (steps 0, 10) [1, 2], width 1 < gn's 2; middle (20–50) [0, 3], width 3 > gn's 2;
        # late (60, 70) [0, 0.5], which no claim reads
        write_arm(root, "none", 0.0, seed, {1e-4: constant(0.0, 1.0, s0=(1.0, 1.5), s10=(1.0, 1.5), s60=(0.0, 0.2),
                                                           s70=(0.0, 0.2)),
                                            2e-4: constant(0.5, 3.0, s0=(1.5, 2.0), s10=(1.5, 2.0), s60=(0.1, 0.5),
                                                           s70=(0.1, 0.5))})
        # gn_plus_gn_first: band [0.5, 1] (width 0.5), below gn; under L2 the same in seed 0, [0.5, 0.9] in seed 1
        for wd in (0.0, L2):
            high = 1.0 if wd == 0.0 or seed == 0 else 0.9
            write_arm(root, "gn_plus_gn_first", wd, seed, {1e-4: constant(0.5, 0.7), 2e-4: constant(0.6, high)})
    return root


def on(ax, gid: str):
    """The one line or band of axes `ax` with this gid (both panels of a pair use the same gids)."""
    (found,) = [a for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]
    return found


def by_statement(claims, fragment: str) -> Claim:
    found = [c for c in claims if fragment in c.statement]
    assert len(found) == 1, [c.statement for c in claims]
    return found[0]


def test_every_claim_number_matches_a_hand_computation(tmp_path):
    runs, _ = load_runs(study_root(tmp_path))
    (study,) = studies(runs)
    assert study.seeds == [0, 1] and study.l2_values == [L2]
    claims = landscape_claims(study)

    # Figure 6, loss: gn width 2 (steps 0, 10: [2, 4] → 2 too), bn width 1 → ratio 2.00, wider at every step
    wider = by_statement(claims, "GN's loss landscape has a wider range than BN's")
    assert wider.seeds[0] == SeedResult("2.00 (100 %)", True) and wider.verdict == HELD
    # GN's minimum (1, or 2 early) > BN's 0.5 everywhere; early (steps 0, 10) GN's min 2 > BN's max 1.5
    assert by_statement(claims, "constantly higher").seeds[1] == SeedResult("100 %", True)
    assert by_statement(claims, "even higher than BN's maximum").seeds[0] == SeedResult("100 %", True)
    # gradient predictiveness is 10 × the loss band: the same ratio
    assert by_statement(claims, "GN's gradient predictiveness has a wider").seeds[0].number == "2.00 (100 %)"

    # Figure 7: early none width 1 vs gn 2 → 0.50, narrower at both early steps: held;
    # middle (steps 20–50) gn 2 vs none 3 → 0.67, narrower: held
    early = by_statement(claims, "early in training the network without normalization has a smaller loss landscape")
    assert early.seeds[0] == SeedResult("0.50 (0 %)", True)
    middle = by_statement(claims, "in the middle period GN's loss landscape range")
    assert middle.seeds[0] == SeedResult("0.67 (0 %)", True)

    # Figure 8: gn with L2 (seed 0): widths 3 at every step vs 2 → 1.50 ≥ 1.1; seed 1: 2.1/2 = 1.05 < 1.1
    widens = by_statement(claims, "widens GN's loss landscape range")
    assert widens.seeds[0] == SeedResult("1.50", True) and widens.seeds[1] == SeedResult("1.05", False)
    assert widens.verdict == PARTLY
    unchanged_bn = by_statement(claims, "does not change BN's ranges")
    assert unchanged_bn.seeds[0] == SeedResult("1.00 / 1.00", True) and unchanged_bn.verdict == HELD

    # Figure 9: gnplus width 0.5 vs gn 2 → 0.25; level (0.5 + 1)/2 = 0.75 vs gn's mean level:
    # gn levels: steps 0, 10 (2 + 4)/2 = 3, others (1 + 3)/2 = 2 → mean (2·3 + 6·2)/8 = 2.25 → 0.333
    assert by_statement(claims, "loss landscape has a smaller range than GN's").seeds[0] == SeedResult("0.25 (0 %)",
                                                                                                       True)
    assert by_statement(claims, "loss landscape has lower values").seeds[0] == SeedResult("0.33", True)

    # Figure 10: gnplus under L2: seed 0 unchanged (1.00), seed 1 width 0.4/0.5 = 0.80: not unchanged
    fig10 = by_statement(claims, "GNPlusGNFirst's ranges do not change")
    assert fig10.seeds[0] == SeedResult("1.00 / 1.00", True) and fig10.seeds[1] == SeedResult("0.80 / 0.80", False)


def test_table1_and_its_claims(tmp_path):
    runs, _ = load_runs(study_root(tmp_path))
    (study,) = studies(runs)
    table = table1(study)
    assert table.lr == 2e-4  # the largest LR, as the paper reads lr 5e-4
    assert table.drops("gn", L2) == pytest.approx({0: 2.5, 1: 0.5})
    assert table.drops("bn", L2) == pytest.approx({0: 0.0, 1: 0.0})
    markdown = table1_markdown(table, ["bn", "gn"])
    # gn: without L2 80, 80; with L2 77.5, 79.5 → 78.50 ± 1.41; drops 2.5, 0.5 → 1.50 ± 1.41
    assert "| gn | 80.00 ± 0.00 | 78.50 ± 1.41 | 1.50 ± 1.41 |" in markdown
    assert "| bn | 85.00 ± 0.00 | 85.00 ± 0.00 | 0.00 ± 0.00 |" in markdown
    # gn validates at 70 % (lr 1e-4) and 80 % (2e-4); none at the default 80 % of write_arm
    (figure4,) = gn_beats_none_claim(study)
    assert figure4.seeds[0] == SeedResult("-10.00 / +0.00", False) and figure4.verdict == NOT_HELD
    gn_drop, bn_drop = table1_claims(table)
    assert gn_drop.seeds == {0: SeedResult("+2.50", True), 1: SeedResult("+0.50", False)}
    assert gn_drop.verdict == PARTLY and bn_drop.verdict == HELD


def test_paired_figures_plot_the_bands(tmp_path, drawn):
    runs, _ = load_runs(study_root(tmp_path))
    (study,) = studies(runs)
    pairs = study.pairs()
    assert [(p.figure, l2) for p, l2 in pairs] == [("Figure 6", 0.0), ("Figure 7", 0.0), ("Figure 8", L2),
                                                   ("Figure 9", 0.0), ("Figure 10", L2)]
    figure8 = next(p for p, _ in pairs if p.figure == "Figure 8")
    plot_pair(study, figure8, L2, tmp_path / "f.png", "t")
    (fig,) = drawn
    loss_ax, grad_ax = fig.axes
    # gn under L2, seed 0, loss: [1, 4] at every step, filled for the first seed; bn's [0.5, 1.5]
    edges = band_edges(on(loss_ax, "band:gn:s0"))
    assert sorted(edges) == STEPS and set(edges.values()) == {(1.0, 4.0)}
    assert set(band_edges(on(loss_ax, "band:bn:s0")).values()) == {(0.5, 1.5)}
    # seed 1: only dashed edges (no fill), its high edge 3.1
    high = on(loss_ax, "high:gn:s1")
    assert high.get_linestyle() == "--" and high.get_xdata().tolist() == STEPS and high.get_ydata().tolist() == [3.1] * 8
    assert not [a for a in loss_ax.collections if a.get_gid() == "band:gn:s1"]
    # gradient predictiveness panel: 10 × the loss band
    assert band_edges(on(grad_ax, "band:bn:s0"))[30.0] == pytest.approx((5.0, 15.0))


def test_report_writes_the_paired_figures_table1_and_claims(tmp_path, drawn):
    runs, _ = load_runs(study_root(tmp_path))
    report, figures = write_report(runs, tmp_path / "report", source="runs")
    text = report.read_text()
    paired = sorted(p.name for p in figures if p.name.startswith("paper_landscape_"))
    assert paired == [f"paper_landscape_{i:02d}.png" for i in range(5)]
    assert sum(fig.texts[0].get_text().startswith("GN paper Figure") for fig in drawn if fig.texts) == 5
    section = text[text.index("## The GN paper's landscape analysis"):text.index("## Runs")]
    figure_lines = []
    for i, (label, l2) in enumerate((("Figure 6: gn vs bn", ""), ("Figure 7: gn vs none", ""),
                                     ("Figure 8: gn vs bn under L2", " 5e-05"),
                                     ("Figure 9: gn_plus_gn_first vs gn", ""),
                                     ("Figure 10: gn_plus_gn_first vs gn under L2", " 5e-05"))):
        figure_lines += [f"**{label}{l2}**", f"![{label}](paper_landscape_{i:02d}.png)"]
    assert [line for line in section.splitlines() if line and not line.startswith("|")] == [
        "## The GN paper's landscape analysis (Figures 6–10, Table 1)",
        "Each band: at each probed step, the lowest `landscape/*_min` and the highest `landscape/*_max` over the "
        "arm's learning rates (the probe's min–max over step sizes η, Santurkar et al. 2018, then over the five LRs, "
        "as the GN paper's appendix B.2); filled for the first seed, dashed edges for the others.",
        "### study · fashion_mnist · small_cnn · bs 128", "28 runs with landscape probes, seeds 0, 1.",
        *figure_lines,
        "**Table 1**: best validation accuracy (%) at lr 0.0002, mean ± std over seeds; drop = without L2 − with L2 "
        "(points).",
        "**Claims**: the number per seed (✗ where its condition fails there) and the verdict over seeds; each loss "
        "claim on the probe's bands and on the measure of the paper's code (the training loss across the LR runs). "
        "Definitions: `lightning_app/report/landscape_claims.py`."]
    assert "| gn | 80.00 ± 0.00 | 78.50 ± 1.41 | 1.50 ± 1.41 |" in section  # by hand in test_table1_and_its_claims
    assert "**partly (1/2 seeds)**" in text and "**held (2/2 seeds)**" in text


def test_verdicts():
    def claim(*holds):
        return Claim("s", "c", "m", "k", {seed: SeedResult("x", h) for seed, h in enumerate(holds)})

    assert claim(True, True, True).verdict == HELD
    assert claim(True, False, True).verdict == PARTLY
    assert claim(False, False).verdict == NOT_HELD
    assert claim().verdict == NOT_MEASURED
    assert claim(True, False).verdict_text == "partly (1/2 seeds)"
    row = claims_module.claims_markdown([claim(True, False)]).splitlines()[2]
    assert "s0: x; s1: x ✗" in row and "**partly (1/2 seeds)**" in row


def test_no_paired_figure_without_two_arms_of_a_pair(tmp_path):
    root = tmp_path / "runs"
    write_arm(root, "gn", 0.0, 0, {1e-4: constant(1.0, 2.0), 2e-4: constant(1.0, 2.0)})
    write_arm(root, "gn_plus_parallel", 0.0, 0, {1e-4: constant(1.0, 2.0), 2e-4: constant(1.0, 2.0)})
    runs, _ = load_runs(root)
    assert studies(runs) == []
    assert [p.figure for p in PAPER_PAIRS] == [f"Figure {n}" for n in (6, 7, 8, 9, 10)]
    assert np.isfinite(lr_band(runs, "loss").low).all()


def test_a_band_ten_times_higher_gets_a_log_axis(tmp_path, drawn):
    """No normalization's band can reach 100 × GN's; on a linear axis GN's band would be a flat line."""
    root = tmp_path / "runs"
    write_arm(root, "gn", 0.0, 0, {1e-4: constant(1.0, 2.0), 2e-4: constant(1.0, 3.0)})
    write_arm(root, "none", 0.0, 0, {1e-4: constant(0.5, 2.0), 2e-4: constant(1.0, 300.0)})  # 300 > 10 × 3
    write_arm(root, "bn", 0.0, 0, {1e-4: constant(0.5, 1.0), 2e-4: constant(0.5, 29.0)})  # 29 < 10 × 3
    runs, _ = load_runs(root)
    (study,) = studies(runs)
    pairs = {p.figure: p for p, _ in study.pairs()}
    plot_pair(study, pairs["Figure 7"], 0.0, tmp_path / "7.png", "t")
    plot_pair(study, pairs["Figure 6"], 0.0, tmp_path / "6.png", "t")
    figure7, figure6 = drawn
    assert [ax.get_yscale() for ax in figure7.axes] == ["log", "log"]
    assert [ax.get_title() for ax in figure7.axes] == ["loss landscape (log scale)",
                                                        "gradient predictiveness (log scale)"]
    assert [ax.get_yscale() for ax in figure6.axes] == ["linear", "linear"]


def test_claims_on_the_measure_of_the_papers_code(tmp_path):
    """The training loss across the LR runs (no probe): gn's runs at 2.0 and 3.0, bn's at 1.0 and 1.2."""
    root = tmp_path / "runs"
    for norm, losses in (("gn", (2.0, 3.0)), ("bn", (1.0, 1.2))):
        for lr, loss in zip((1e-4, 2e-4), losses):
            rows = landscape_rows(constant(1.0, 2.0)) + [{"epoch": 0, "step": s, "train/loss": loss} for s in STEPS]
            write_run(root, norm, 128, 0, "completed", 0.8, lr=lr, rows=rows, model={"weight_decay": 0.0},
                      run_name=f"{norm}_lr{lr:g}")
    runs, _ = load_runs(root)
    (study,) = studies(runs)
    claims = landscape_claims(study, "paper_code")
    wider = by_statement(claims, "GN's loss landscape has a wider range")
    assert wider.measure.startswith("paper's code: train/loss over LRs")
    assert wider.seeds[0] == SeedResult("5.00 (100 %)", True)  # widths 1.0 against 0.2
    assert by_statement(claims, "even higher than BN's maximum").seeds[0] == SeedResult("100 %", True)  # 2 > 1.2
    assert not [c for c in claims if "gradient predictiveness" in c.statement]


def test_log_axis_edges_exactly_ten_times_and_a_band_touching_zero(tmp_path, drawn):
    """Exactly LOG_SCALE_RATIO × stays linear (the rule is "more than"); a band reaching 0 cannot go on a
    log axis however far apart the arms are."""
    root = tmp_path / "runs"
    for lr in (1e-4, 2e-4):  # a study needs two learning rates
        write_arm(root, "gn", 0.0, 0, {lr: constant(1.0, 3.0)})
        write_arm(root, "bn", 0.0, 0, {lr: constant(0.5, 30.0)})  # 30 = 10 × 3
        write_arm(root, "none", 0.0, 0, {lr: constant(0.0, 300.0)})  # its loss band starts at 0
    (study,) = studies(load_runs(root)[0])
    pairs = {p.figure: p for p, _ in study.pairs()}
    plot_pair(study, pairs["Figure 6"], 0.0, tmp_path / "6.png", "t")
    plot_pair(study, pairs["Figure 7"], 0.0, tmp_path / "7.png", "t")
    figure6, figure7 = drawn
    assert [ax.get_yscale() for ax in figure6.axes] == ["linear", "linear"]
    assert [ax.get_yscale() for ax in figure7.axes] == ["linear", "linear"]


def test_a_paired_figure_is_two_panels_side_by_side_in_each_norms_colour(tmp_path, drawn):
    """13 × 4.4 in (1430 × 484 px at the report's 110 dpi): loss landscape left, gradient predictiveness
    right; each norm's band in the colour it has in every figure of the report."""
    runs, _ = load_runs(study_root(tmp_path))
    (study,) = studies(runs)
    figure6 = next(p for p, _ in study.pairs() if p.figure == "Figure 6")
    plot_pair(study, figure6, 0.0, tmp_path / "f.png", "t")
    (fig,) = drawn
    assert tuple(fig.get_size_inches()) == pytest.approx((13, 4.4))
    left, right = (ax.get_position() for ax in fig.axes)
    assert left.y0 == pytest.approx(right.y0) and left.x1 < right.x0
    for ax in fig.axes:
        for norm in ("gn", "bn"):
            (band,) = [c for c in ax.collections if c.get_gid() == f"band:{norm}:s0"]
            assert tuple(band.get_facecolor()[0]) == pytest.approx((*norm_colour(norm)[:3], 0.35))


def test_no_figure_for_a_pair_the_study_has_no_band_of(tmp_path, drawn):
    runs, _ = load_runs(study_root(tmp_path))
    (study,) = studies(runs)
    figure10 = next(p for p in PAPER_PAIRS if p.figure == "Figure 10")
    assert plot_pair(study, figure10, 0.123, tmp_path / "f.png", "t") is None
    assert drawn == [] and not (tmp_path / "f.png").exists()


def test_band_places_each_run_at_its_steps_and_counts_a_step_only_where_both_edges_are_finite(tmp_path):
    """An LR run probed at fewer steps counts at those only; a probe with one edge NaN counts nowhere; a
    step no run counts leaves the band, without numpy's all-NaN warning."""
    root = tmp_path / "runs"
    nan = float("nan")
    write_arm(root, "gn", 0.0, 0, {1e-4: {s: (1.0, 2.0) for s in STEPS[:-1]},  # not probed at step 70
                                   2e-4: {0: (0.5, 5.0), 20: (0.5, nan), 40: (0.4, 6.0), 70: (nan, nan)}})
    runs, _ = load_runs(root)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        band = lr_band(runs, "loss")
    assert band.steps.tolist() == STEPS[:-1]  # step 70: no finite probe
    assert band.runs.tolist() == [2, 1, 1, 1, 2, 1, 1]  # step 20: the low edge alone does not count
    assert band.low.tolist() == [0.5, 1.0, 1.0, 1.0, 0.4, 1.0, 1.0]
    assert band.high.tolist() == [5.0, 2.0, 2.0, 2.0, 6.0, 2.0, 2.0]


def test_a_paired_figure_draws_every_seed_that_has_a_band_and_labels_each_norm(tmp_path, drawn):
    """Seed 1 of gn has no runs: seed 2 is still drawn (dashed). The legend names each norm's first seed
    and, once, its other seeds; the bands are filled without an outline, their edges drawn in the norm's
    colour."""
    root = tmp_path / "runs"
    for seed in (0, 2):
        write_arm(root, "gn", 0.0, seed, {1e-4: constant(1.0, 2.0), 2e-4: constant(1.0, 3.0)})
    for seed in (0, 1, 2):
        write_arm(root, "bn", 0.0, seed, {1e-4: constant(0.5, 1.0), 2e-4: constant(0.5, 1.5)})
    (study,) = studies(load_runs(root)[0])
    figure6 = next(p for p, _ in study.pairs() if p.figure == "Figure 6")
    plot_pair(study, figure6, 0.0, tmp_path / "f.png", "t")
    (fig,) = drawn
    loss_ax = fig.axes[0]
    assert on(loss_ax, "high:gn:s2").get_linestyle() == "--"
    assert loss_ax.get_legend_handles_labels()[1] == ["gn (seed 0)", "gn (other seeds)", "bn (seed 0)",
                                                      "bn (other seeds)"]
    for norm in ("gn", "bn"):
        (band,) = [c for c in loss_ax.collections if c.get_gid() == f"band:{norm}:s0"]
        assert band.get_linewidth().tolist() == [0.0]
        for seed in (0, 2):
            assert on(loss_ax, f"low:{norm}:s{seed}").get_color() == norm_colour(norm)


def test_a_paired_figures_lines_axes_and_legend(tmp_path, drawn):
    """Each panel: its title, the training step on x, the quantity on y; the first seed's band edges solid
    (0.9 pt, opaque) and a further seed's dashed (0.7 pt, α 0.6), each at its band's steps and values; the
    legend in 8 pt, its "other seeds" entry drawn like those dashed edges."""
    runs, _ = load_runs(study_root(tmp_path))
    (study,) = studies(runs)
    figure6 = next(p for p, _ in study.pairs() if p.figure == "Figure 6")
    plot_pair(study, figure6, 0.0, tmp_path / "f.png", "t")
    (fig,) = drawn
    for ax, (quantity, panel, ylabel) in zip(fig.axes, QUANTITIES, strict=True):
        assert (ax.get_title(), ax.get_xlabel()) == (panel, "training step")
        assert ax.get_ylabel() == f"{ylabel}: min–max over η and LRs"
        for norm in ("gn", "bn"):
            for seed, look in ((0, (0.9, "-", 1.0)), (1, (0.7, "--", 0.6))):
                band = study.band(figure6.arm(norm, 0.0), seed, quantity)
                for edge, values in (("low", band.low), ("high", band.high)):
                    line = on(ax, f"{edge}:{norm}:s{seed}")
                    assert (line.get_linewidth(), line.get_linestyle(), line.get_alpha()) == look
                    assert line.get_xdata().tolist() == band.steps.tolist()
                    assert line.get_ydata().tolist() == values.tolist()
        texts = ax.get_legend().get_texts()
        assert [t.get_text() for t in texts] == ["gn (seed 0)", "gn (other seeds)", "bn (seed 0)", "bn (other seeds)"]
        assert {t.get_fontsize() for t in texts} == {8}
        handles, labels = ax.get_legend_handles_labels()
        for handle, label in zip(handles, labels):
            if label.endswith("(other seeds)"):
                look = (handle.get_color(), handle.get_linestyle(), handle.get_linewidth())
                assert look == (norm_colour(label.split()[0]), "--", 0.7)


def test_a_pair_without_l2_compares_the_runs_without_weight_decay_and_says_so(tmp_path, drawn):
    pairs = {p.figure: p for p in PAPER_PAIRS}
    assert pairs["Figure 6"].arm("gn", L2) == ("gn", 0.0) and pairs["Figure 8"].arm("gn", L2) == ("gn", L2)
    runs, _ = load_runs(study_root(tmp_path))
    (study,) = studies(runs)
    for pair, l2 in study.pairs():
        if pair.figure in ("Figure 6", "Figure 8"):
            plot_pair(study, pair, l2, tmp_path / "f.png", "fashion_mnist")
    titles = [fig._suptitle for fig in drawn]
    assert [t.get_text() for t in titles] == [
        "GN paper Figure 6, laptop version: gn vs bn, no L2 · fashion_mnist",
        "GN paper Figure 8, laptop version: gn vs bn, L2 5e-05 · fashion_mnist"]
    assert {t.get_fontsize() for t in titles} == {10}


def test_no_paired_figure_while_an_arm_has_a_single_learning_rate(tmp_path):
    """The band is over learning rates: an arm run at one LR has no band to compare (the paper's ≥ 2)."""
    root = tmp_path / "runs"
    write_arm(root, "gn", 0.0, 0, {1e-4: constant(1.0, 2.0), 2e-4: constant(1.0, 3.0)})
    write_arm(root, "bn", 0.0, 0, {1e-4: constant(0.5, 1.0)})
    assert studies(load_runs(root)[0]) == []
    write_arm(root, "bn", 0.0, 0, {2e-4: constant(0.5, 1.5)})
    (study,) = studies(load_runs(root)[0])
    assert [p.figure for p, _ in study.pairs()] == ["Figure 6"]
