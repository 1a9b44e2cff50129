"""What the report's figures plot: the data behind each line and band, found by the gid each series
carries, against values computed here by hand (the PNG itself is checked in test_report.py)."""
import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml
from matplotlib.colors import to_hex
from matplotlib.ticker import MaxNLocator

from lightning_app.report import batch_figures, figures
from lightning_app.report.batch_figures import (plot_accuracy_vs_batch, plot_final_lambda_vs_batch,
                                                plot_lambda_trajectories)
from lightning_app.report.figures import plot_landscape, plot_lr_envelope, plot_training_curves
from lightning_app.report.runs import load_runs
from lightning_app.report.tables import accuracy_table
from tests.lightning_app.report.figure_looks import look, text_of
from tests.lightning_app.report.report_runs import write_run


def artist(fig, gid: str):
    found = [a for ax in fig.axes for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {len(found)} artists"
    return found[0]


def band_edges(collection) -> dict[float, tuple[float, float]]:
    """x -> (lower, upper) of a fill_between band."""
    edges: dict[float, list[float]] = {}
    for x, y in collection.get_paths()[0].vertices:
        edges.setdefault(round(float(x), 9), []).append(float(y))
    return {x: (min(ys), max(ys)) for x, ys in edges.items()}


def test_accuracy_against_batch_size(tmp_path, drawn):
    root = tmp_path / "runs"
    for norm, bs, values in [("bn", 2, [0.60, 0.70, None]), ("bn", 8, [0.80, 0.84, 0.82]), ("bn", 32, [0.9, 0.9, 0.9]),
                             ("gn", 2, [None, None]), ("gn", 8, [0.85, 0.86]), ("gn", 32, [0.86, 0.88])]:
        for seed, value in enumerate(values):
            write_run(root, norm, bs, seed, "exploded" if value is None else "completed", value, rows=[])
    runs, _ = load_runs(root)
    plot_accuracy_vs_batch(accuracy_table(runs, "final_val_acc"), tmp_path / "a.png", "t", "acc (%)")
    (fig,) = drawn
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.xaxis.get_transform().base == 2
    bn = artist(fig, "mean:bn")
    assert bn.get_xdata().tolist() == [2, 8, 32] and np.allclose(bn.get_ydata(), [65, 82, 90])
    assert band_edges(artist(fig, "band:bn"))[2.0] == pytest.approx((65 - 7.0711, 65 + 7.0711), abs=1e-3)  # std √50
    assert band_edges(artist(fig, "band:bn"))[8.0] == pytest.approx((80, 84))  # 82 ± 2
    gn = artist(fig, "mean:gn")
    assert gn.get_xdata().tolist() == [8, 32] and np.allclose(gn.get_ydata(), [85.5, 87])  # bs 2: every seed exploded
    # exploded seeds: at bn's bs-2 mean (some seeds finished), below the lowest mean for gn (none did)
    assert artist(fig, "exploded:bn").get_xdata().tolist() == [2] and artist(fig, "exploded:bn").get_ydata()[0] == 65
    low = artist(fig, "exploded:gn")
    assert low.get_xdata().tolist() == [2] and low.get_ydata()[0] == 65 - max(1.0, 0.05 * 65)  # below the lowest mean


def test_accuracy_against_batch_size_looks(tmp_path, drawn):
    """Per norm its colour (tab10 in the registry's order: none, bn, gn, ...): a faint band, a line with
    dots, bold × marks; a log₂ axis ticked at the batch sizes only, a faint grid, the legend and title."""
    root = tmp_path / "runs"
    for norm, bs, seed, value in [("bn", 2, 0, 0.6), ("bn", 2, 1, None), ("bn", 8, 0, 0.8), ("gn", 8, 0, 0.85)]:
        write_run(root, norm, bs, seed, "exploded" if value is None else "completed", value, rows=[])
    plot_accuracy_vs_batch(accuracy_table(load_runs(root)[0], "final_val_acc"), tmp_path / "a.png", "t", "acc (%)")
    (fig,) = drawn
    (ax,) = fig.axes
    bn, gn, rc = to_hex(plt.get_cmap("tab10")(1)), to_hex(plt.get_cmap("tab10")(2)), plt.rcParams
    assert tuple(fig.get_size_inches()) == (7.5, 4.6)
    assert look(artist(fig, "band:bn")) == {"label": None, "alpha": 0.2, "colour": bn, "width": 0.0}
    assert look(artist(fig, "mean:gn")) == {"label": "gn", "alpha": None, "colour": gn, "width": rc["lines.linewidth"],
                                            "style": "-", "marker": "o", "size": rc["lines.markersize"],
                                            "edge": rc["lines.markeredgewidth"]}
    assert look(artist(fig, "exploded:bn")) == {"label": None, "alpha": None, "colour": bn,
                                                "width": rc["lines.linewidth"], "style": "None", "marker": "x",
                                                "size": 11.0, "edge": 2.5}
    assert [t.get_text() for t in ax.get_xticklabels()] == ["2", "8"] and ax.get_xticks().tolist() == [2, 8]
    assert not ax.get_xticks(minor=True).size and text_of(ax.xaxis.label) == ("batch size (log₂)", rc["font.size"])
    assert ax.get_ylabel() == "acc (%)"
    assert all(line.get_visible() and line.get_alpha() == 0.3 for line in ax.get_xgridlines() + ax.get_ygridlines())
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "norm" and [t.get_text() for t in legend.get_texts()] == ["bn", "gn"]
    assert {t.get_fontsize() for t in legend.get_texts()} == {8}
    assert text_of(ax.title) == ("t\nmean ± std over seeds · ×: seeds that exploded", 9)
    assert band_edges(artist(fig, "band:bn"))[8.0] == (80.0, 80.0)  # one seed: no spread


def test_an_all_exploded_cell_is_marked_a_point_under_a_low_lowest_mean(tmp_path, drawn):
    root = tmp_path / "runs"
    write_run(root, "bn", 2, 0, "completed", 0.1, rows=[])  # the lowest mean: 10 %
    write_run(root, "bn", 8, 0, "completed", 0.2, rows=[])
    write_run(root, "gn", 2, 0, "exploded", None, rows=[])
    plot_accuracy_vs_batch(accuracy_table(load_runs(root)[0], "final_val_acc"), tmp_path / "a.png", "t", "acc (%)")
    (fig,) = drawn
    assert artist(fig, "exploded:gn").get_ydata().tolist() == [10.0 - 1.0]  # max(1 point, 5 % of 10)
    finished = [run for run in load_runs(root)[0] if run.status == "completed"]
    plot_accuracy_vs_batch(accuracy_table(finished, "final_val_acc"), tmp_path / "b.png", "t", "acc (%)")
    assert drawn[1].axes[0].get_title() == "t\nmean ± std over seeds"  # nothing exploded: no × to explain


def lambda_rows(start: float, slope: float, steps: range) -> list[dict]:
    return [{"epoch": 0, "step": s, "lambda/net.features.1": start + slope * s, "lambda/net.features.12": start - slope * s}
            for s in steps]


def test_final_lambda_and_trajectories_share_one_axis_and_mark_the_start(tmp_path, drawn):
    root = tmp_path / "runs"
    finals = {}
    for bs, slope in ((2, 0.001), (8, -0.002)):
        for seed in (0, 1):
            rows = lambda_rows(0.7311, slope * (1 + seed), range(0, 50, 10))
            finals[(bs, seed)] = (rows[-1]["lambda/net.features.1"], rows[-1]["lambda/net.features.12"])
            write_run(root, "gn_plus_parallel", bs, seed, "completed", 0.8, rows=rows, summary={"lambdas": {
                "net.features.1": finals[(bs, seed)][0], "net.features.12": finals[(bs, seed)][1]}})
    runs, _ = load_runs(root)
    plot_final_lambda_vs_batch(runs, tmp_path / "f.png", "t")
    plot_lambda_trajectories(runs, tmp_path / "l.png", "t")
    final, trajectories = drawn
    line = artist(final, "layer:gn_plus_parallel:features.12")
    assert line.get_xdata().tolist() == [2, 8]
    assert np.allclose(line.get_ydata(), [np.mean([finals[(2, s)][1] for s in (0, 1)]),
                                          np.mean([finals[(8, s)][1] for s in (0, 1)])])
    assert artist(final, "start").get_ydata()[0] == pytest.approx(0.7311)  # the logged step-0 value
    assert all(ax.get_ylim() == (0.0, 1.0) for ax in final.axes)
    layer = artist(trajectories, "layer:gn_plus_parallel:bs8:features.1")
    assert layer.get_xdata().tolist() == [0, 80, 160, 240, 320]  # steps 0…40 × 8 images
    # mean over seeds of 0.7311 − 0.002·(1 + seed)·step: slope −0.003
    assert np.allclose(layer.get_ydata(), 0.7311 - 0.003 * np.arange(0, 50, 10))
    assert {ax.get_ylim() for ax in trajectories.axes} == {(0.0, 1.0)}  # one y axis for every panel
    assert sum(a.get_gid() == "start" for ax in trajectories.axes for a in ax.lines) == 2


def test_the_lambda_figures_look(tmp_path, drawn):
    """One panel per GNPlus norm (final σ(λ)) or per norm and batch size (trajectories), all on one y axis;
    layers in viridis from input to output, faint bands, the start grey and dashed, one legend."""
    root = tmp_path / "runs"
    for norm, seeds in (("gn_plus_parallel", (0, 1)), ("gn_plus_gn_first", (0,))):
        for bs in (2, 8):
            for seed in seeds:
                rows = lambda_rows(0.7311, 0.001, range(0, 50, 10))
                write_run(root, norm, bs, seed, "completed", 0.8, rows=rows, summary={"lambdas": {
                    "net.features.1": 0.75, "net.features.12": 0.7}})
    runs, _ = load_runs(root)
    plot_final_lambda_vs_batch(runs, tmp_path / "f.png", "t")
    plot_lambda_trajectories(runs, tmp_path / "l.png", "t")
    final, trajectories = drawn
    first, last = to_hex(plt.get_cmap("viridis")(0.0)), to_hex(plt.get_cmap("viridis")(1.0))
    rc = plt.rcParams
    start = {"label": "start 0.731", "alpha": None, "colour": to_hex("grey"), "width": 1.0, "style": "--",
             "marker": "None", "size": rc["lines.markersize"], "edge": rc["lines.markeredgewidth"]}

    assert tuple(final.get_size_inches()) == (10.4, 4.4)  # 5.2 per norm
    left, right = final.axes
    assert left.get_shared_y_axes().joined(left, right)
    assert [ax.get_title() for ax in final.axes] == ["gn_plus_parallel", "gn_plus_gn_first"]
    assert look(artist(final, "band:gn_plus_parallel:features.12")) == {"label": None, "alpha": 0.15, "colour": last,
                                                                          "width": 0.0}
    assert look(artist(final, "layer:gn_plus_parallel:features.1")) == {
        "label": "features.1", "alpha": None, "colour": first, "width": rc["lines.linewidth"], "style": "-",
        "marker": "o", "size": 4.0, "edge": rc["lines.markeredgewidth"]}
    assert [look(a) for a in left.lines if a.get_gid() == "start"] == [start]
    assert {ax.get_ylabel() for ax in final.axes} == {"final σ(λ) (weight on GN)"}
    assert all(g.get_visible() and g.get_alpha() == 0.3 for ax in final.axes for g in ax.get_ygridlines())
    assert right.get_legend() is None and left.get_legend().get_title().get_text() == "layer (input → output)"
    assert [text_of(t) for t in left.get_legend().get_texts()] == [("features.1", 7), ("features.12", 7),
                                                                   ("start 0.731", 7)]
    assert text_of(final._suptitle) == ("Final σ(λ) per GNPlus layer, mean ± std over seeds: t", 10)

    assert tuple(trajectories.get_size_inches()) == (3.8 * 2 + 1, 3.2 * 2)  # 2 batch sizes × 2 norms
    panels = trajectories.axes
    assert all(panels[0].get_shared_y_axes().joined(panels[0], ax) for ax in panels)
    assert [text_of(ax.title) for ax in panels] == [("gn_plus_parallel · bs 2 (2 seeds)", 9),
                                                     ("gn_plus_parallel · bs 8 (2 seeds)", 9),
                                                     ("gn_plus_gn_first · bs 2 (1 seed)", 9),
                                                     ("gn_plus_gn_first · bs 8 (1 seed)", 9)]
    assert [ax.get_ylabel() for ax in panels] == ["σ(λ) (weight on GN)", "", "σ(λ) (weight on GN)", ""]
    assert {ax.get_xlabel() for ax in panels} == {"training images seen"}
    assert look(artist(trajectories, "band:gn_plus_gn_first:bs8:features.12")) == {
        "label": None, "alpha": 0.15, "colour": last, "width": 0.0}
    assert look(artist(trajectories, "layer:gn_plus_gn_first:bs8:features.1")) == {
        "label": "features.1", "alpha": None, "colour": first, "width": 1.2, "style": "-", "marker": "None",
        "size": rc["lines.markersize"], "edge": rc["lines.markeredgewidth"]}
    for ax in panels:
        assert [look(a) for a in ax.lines if a.get_gid() == "start"] == [start]
        (dot,) = [a for a in ax.lines if a.get_marker() == "o"]  # the start, at 0 images seen
        assert (dot.get_xdata().tolist(), dot.get_ydata().tolist()) == ([0], [pytest.approx(0.7311)])
        assert (to_hex(dot.get_color()), dot.get_markersize()) == (to_hex("grey"), 5.0)
    assert [ax.get_legend() is not None for ax in panels] == [True, False, False, False]
    legend = panels[0].get_legend()
    assert legend.get_title().get_text() == "layer" and {t.get_fontsize() for t in legend.get_texts()} == {7}
    assert text_of(trajectories._suptitle) == (
        "σ(λ) per GNPlus layer during training, mean ± std over seeds (dashed: start): t", 10)


@pytest.mark.parametrize("lambda_init", [None, -0.5])
def test_the_start_line_is_sigma_of_lambda_init_when_step_0_was_not_logged(tmp_path, drawn, lambda_init):
    """Hand-made metrics.csv files whose σ(λ) rows begin at step 10 (the tracker logged no step 0): the
    dashed start line is σ(λ_init) from the run's config (GNPlus's default λ_init = 1), never the first
    logged value, in both λ figures."""
    root = tmp_path / "runs"
    for bs in (2, 8):
        rows = lambda_rows(0.6, 0.001, range(10, 50, 10))
        run_dir = write_run(root, "gn_plus_parallel", bs, 0, "completed", 0.8, rows=rows)
        if lambda_init is not None:
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            config["model"]["norm_options"] = {"lambda_init": lambda_init}
            (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    runs, _ = load_runs(root)
    plot_final_lambda_vs_batch(runs, tmp_path / "f.png", "t")
    plot_lambda_trajectories(runs, tmp_path / "l.png", "t")
    start = 1 / (1 + math.exp(-(1.0 if lambda_init is None else lambda_init)))
    for fig in drawn:
        starts = [a.get_ydata()[0] for ax in fig.axes for a in ax.lines if a.get_gid() == "start"]
        assert starts and starts == pytest.approx([start] * len(starts))


def test_training_curves_against_images_seen_with_seed_bands(tmp_path, drawn):
    root = tmp_path / "runs"
    for bs, seed, accs in ((4, 0, [0.5, 0.7]), (4, 1, [0.6, 0.9]), (16, 0, [0.8, 0.85])):
        rows = [{"epoch": 0, "step": s, "train/loss": 2.0 - 0.1 * s - 0.1 * seed} for s in range(0, 10, 2)]
        rows += [{"epoch": 0, "step": 4, "val/acc": accs[0], "val/loss": 1.0},  # two validations in one epoch
                 {"epoch": 0, "step": 9, "val/acc": accs[1], "val/loss": 0.5}]
        write_run(root, "gn", bs, seed, "completed", accs[1], rows=rows)
    runs, _ = load_runs(root)
    plot_training_curves(runs, tmp_path / "c.png", "t")
    (fig,) = drawn
    lines = [a for ax in fig.axes for a in ax.lines if a.get_gid() == "mean:gn:bs4"]
    train, _, val_acc = lines  # one per panel: training loss, validation loss, validation accuracy
    assert val_acc.get_xdata().tolist() == [16, 36]  # steps 4 and 9 × 4 images, not the epoch
    assert np.allclose(val_acc.get_ydata(), [0.55, 0.8])
    bands = [a for ax in fig.axes for a in ax.collections if a.get_gid() == "band:gn:bs4"]
    assert band_edges(bands[2])[36.0] == pytest.approx((0.8 - 0.1414, 0.8 + 0.1414), abs=1e-3)  # std of 0.7, 0.9
    assert train.get_xdata().tolist() == [0, 8, 16, 24, 32] and np.allclose(train.get_ydata()[:2], [1.95, 1.75])
    wider = [a for ax in fig.axes for a in ax.lines if a.get_gid() == "mean:gn:bs16"][2]
    assert wider.get_xdata().tolist() == [64, 144]  # the bs-16 run on the same images-seen axis


def test_landscape_bands_are_binned_so_hundreds_of_probes_stay_readable(tmp_path, drawn):
    root = tmp_path / "runs"
    steps = np.arange(0, 3000, 5)  # 600 probes per seed
    for seed in (0, 1):
        rows = [{"epoch": 0, "step": int(s), "landscape/loss_min": 1.0 + 0.001 * s + seed,
                 "landscape/loss_max": 2.0 + 0.001 * s + seed} for s in steps]
        write_run(root, "bn", 2, seed, "completed", 0.8, rows=rows)
    runs, _ = load_runs(root)
    plot_landscape(runs, tmp_path / "l.png", "t")
    (fig,) = drawn
    edges = band_edges(artist(fig, "band:bn"))
    assert 10 <= len(edges) <= figures.MAX_POINTS
    for x, (low, high) in edges.items():
        # a bin's mean of a linear function of images seen (2 per step) is its value at the bin's mean x,
        # and the two seeds (offset 0 and 1) average to +0.5
        assert low == pytest.approx(1.5 + 0.0005 * x) and high == pytest.approx(2.5 + 0.0005 * x)


def integer_ticks(ax) -> bool:
    locator = ax.xaxis.get_major_locator()
    return isinstance(locator, MaxNLocator) and locator._integer and locator._min_n_ticks == 1


def test_the_training_curves_look(tmp_path, drawn):
    """Rows of batch sizes sharing x and, per quantity, y; per norm its colour, a faint band and a line,
    dotted where validated; a black × at an exploded run's last finite value; the training loss (one
    batch per point) in 20 bins, validation points as measured."""
    root = tmp_path / "runs"
    for norm, bs, status in (("bn", 4, "completed"), ("gn", 4, "exploded"), ("gn", 16, "completed")):
        rows = [{"epoch": 0, "step": s, "train/loss": 2.0 - 0.01 * s} for s in range(50)]
        rows += [{"epoch": 0, "step": 49, "val/acc": 0.5, "val/loss": 1.0}]
        write_run(root, norm, bs, 0, status, 0.5, rows=rows)
    plot_training_curves(load_runs(root)[0], tmp_path / "c.png", "t")
    (fig,) = drawn
    rc = plt.rcParams
    assert tuple(fig.get_size_inches()) == (15, 3.8 * 2)
    axes = fig.axes
    assert all(axes[0].get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    assert [axes[i].get_shared_y_axes().joined(axes[i], axes[i + 3]) for i in range(3)] == [True] * 3
    assert not axes[0].get_shared_y_axes().joined(axes[0], axes[1])  # loss and accuracy keep their own scales
    assert [text_of(ax.title)[0] for ax in axes] == [f"{q} · batch size {bs}" for bs in (4, 16) for q in
                                                     ("training loss", "validation loss", "validation accuracy")]
    assert [ax.get_ylabel() for ax in axes[:3]] == ["training loss", "validation loss", "validation accuracy"]
    assert {ax.get_xlabel() for ax in axes} == {"training images seen"} and all(map(integer_ticks, axes))
    train, _, val = [a for ax in axes for a in ax.lines if a.get_gid() == "mean:bn:bs4"]
    line = {"alpha": None, "colour": to_hex(plt.get_cmap("tab10")(1)), "width": 1.3, "style": "-", "size": 3.5,
            "edge": rc["lines.markeredgewidth"], "label": "bn (1)"}
    assert look(train) == {**line, "marker": "None"} and look(val) == {**line, "marker": "o"}
    assert len(train.get_xdata()) == 20 and len(val.get_xdata()) == 1  # 50 logged losses in 20 bins
    band = [a for ax in axes for a in ax.collections if a.get_gid() == "band:gn:bs16"][0]
    assert look(band) == {"label": None, "alpha": 0.25, "colour": to_hex(plt.get_cmap("tab10")(2)), "width": 0.0}
    crosses = [a for ax in axes for a in ax.lines if a.get_gid() == "exploded:gn:bs4"]
    assert len(crosses) == 3 and look(crosses[0]) == {"label": None, "alpha": None, "colour": "#000000",
                                                      "width": rc["lines.linewidth"], "style": "None", "marker": "x",
                                                      "size": 9.0, "edge": 2.0}
    assert crosses[0].get_xdata().tolist() == [49 * 4] and crosses[0].get_ydata().tolist() == [2.0 - 0.49]
    legend = axes[0].get_legend()
    assert legend.get_title().get_text() == "norm (seeds)" and [text_of(t) for t in legend.get_texts()] == [
        ("bn (1)", 8), ("gn (1)", 8)]
    assert text_of(fig._suptitle) == (
        "Training curves, mean ± std over seeds: t (×: last finite value of a run that exploded)", 10)


def test_the_landscape_and_envelope_figures_look(tmp_path, drawn):
    root = tmp_path / "runs"
    for norm in ("bn", "gn"):
        for lr in (0.1, 0.01):
            rows = [{"epoch": 0, "step": s, "train/loss": 2.0 - s * lr, "landscape/loss_min": 1.0,
                     "landscape/loss_max": 2.0, "landscape/grad_pred_min": 0.1, "landscape/grad_pred_max": 0.2,
                     "landscape/beta_eff": 3.0} for s in range(0, 10, 2)]
            write_run(root, norm, 8, 0, "completed", 0.5, lr=lr, rows=rows)
    runs, _ = load_runs(root)
    plot_landscape([r for r in runs if r.axis("lr") == 0.1], tmp_path / "l.png", "t")
    plot_lr_envelope(runs, tmp_path / "e.png", "t")
    landscape, envelope = drawn
    bn, gn = (to_hex(plt.get_cmap("tab10")(i)) for i in (1, 2))
    assert tuple(landscape.get_size_inches()) == (15, 4)
    loss, grad, beta = landscape.axes
    assert [(ax.get_title(), ax.get_xlabel(), ax.get_ylabel()) for ax in landscape.axes] == [
        ("loss landscape", "training images seen", "loss at θ − η·g"),
        ("gradient predictiveness", "training images seen", "‖∇L(θ − η·g) − g‖"),
        ("effective β-smoothness", "training images seen", "max ‖Δ∇L‖ / ‖Δθ‖")]
    assert all(map(integer_ticks, landscape.axes))
    for ax in (loss, grad):
        bands = [a for a in ax.collections if a.get_gid() == "band:gn"]
        assert [look(b) for b in bands] == [{"label": "gn", "alpha": 0.3, "colour": gn, "width": 0.0}]
        edges = [a for a in ax.lines if to_hex(a.get_color()) == gn]
        assert [(a.get_linewidth(), a.get_label().startswith("_")) for a in edges] == [(0.8, True)] * 2
        assert ax.get_legend().get_title().get_text() == "norm"
    assert [(a.get_gid(), to_hex(a.get_color()), a.get_label()) for a in beta.lines] == [("beta:bn", bn, "bn"),
                                                                                          ("beta:gn", gn, "gn")]
    assert text_of(landscape._suptitle) == ("Landscape along the gradient (band: min–max over step sizes η, averaged "
                                            "over seeds in ≤ 40 bins): t", 10)

    (ax,) = envelope.axes
    assert tuple(envelope.get_size_inches()) == (7, 4.2)
    assert look(artist(envelope, "band:bn")) == {"label": "bn (lr 0.01, 0.1)", "alpha": 0.3, "colour": bn, "width": 0.0}
    edges = [a for a in ax.lines if to_hex(a.get_color()) == bn]
    assert [(a.get_linewidth(), a.get_label().startswith("_")) for a in edges] == [(0.8, True)] * 2
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("optimizer step", "train/loss (min–max over learning rates)")
    assert text_of(ax.title) == ("Learning-rate envelope: t", 10) and integer_ticks(ax)
    assert ax.get_legend().get_title().get_text() == "norm"


def test_layer_colours_span_viridis_and_the_start_without_runs_or_a_step_0_is_sigma_of_lambda_init(tmp_path):
    viridis = plt.get_cmap("viridis")
    assert batch_figures._layer_colours(["a", "b", "c"]) == {"a": viridis(0.0), "b": viridis(0.5), "c": viridis(1.0)}
    assert batch_figures._layer_colours(["a"]) == {"a": viridis(0.0)}
    assert batch_figures.lambda_start([]) == pytest.approx(1 / (1 + math.exp(-1.0)))  # GNPlus's default λ_init = 1
    run_dir = write_run(tmp_path / "runs", "gn_plus_parallel", 8, 0, "completed", 0.8,
                        rows=lambda_rows(0.6, 0.001, range(10, 30, 10)), model={"norm_options": {"lambda_init": -0.5}})
    assert batch_figures.lambda_start(load_runs(run_dir.parents[1])[0]) == pytest.approx(1 / (1 + math.exp(0.5)))
