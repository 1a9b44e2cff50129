"""The report's activation-statistics figures (the course report's histograms over time, channel means and
gradient L2 norms): each plotted series, found by its gid, against numbers written into run directories
by hand, and against the files a real `lightning fit` with the activations preset writes; the report
links the figures only for runs that measured their norm layers."""
import csv
import json
import textwrap

import matplotlib.image
import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex

from callbacks.activation_records import HISTOGRAM_FILE, read_histograms
from lightning_app.command import main
from lightning_app.report.activation_figures import (MAX_RIDGES, plot_activation_histograms, plot_channel_means,
                                                     plot_grad_norms, value_window)
from lightning_app.report.command import FIGURE_NAME, REPORT_HEADING
from lightning_app.report.runs import load_runs
from tests.helpers import ROOT, tiny_args
from tests.lightning_app.report.figure_looks import look, text_of
from tests.lightning_app.report.report_runs import write_run
from tests.lightning_app.report.test_report_figures import artist, band_edges

DEEP, SHALLOW = "net.features.5", "net.features.1"


def histogram_line(step, layer, channel, where, counts, below=0, above=0, value_range=(-3.0, 3.0)):
    return json.dumps({"step": step, "layer": layer, "channel": channel, "where": where, "range": list(value_range),
                       "bins": len(counts), "counts": counts, "below": below, "above": above}) + "\n"


def activation_rows(steps, mean, var, coherence=None, grad=None) -> list[dict]:
    """metrics.csv rows as the callback and the explosion detector log them: `mean(step, channel)` etc."""
    rows = []
    for step in steps:
        row = {"epoch": 0, "step": step}
        for channel in (0, 1):
            row[f"activation/{DEEP}/mean@{channel}"] = mean(step, channel)
            row[f"activation/{DEEP}/var@{channel}"] = var(step, channel)
            row[f"activation/{SHALLOW}/mean@{channel}"] = 99.0  # a shallower layer: not drawn
            row[f"activation/{SHALLOW}/var@{channel}"] = 1.0
        if coherence:
            row[f"activation/{DEEP}/group_coherence_mean"] = coherence(step)
            row[f"activation/{DEEP}/group_coherence_logvar"] = coherence(step) / 2
        rows.append(row)
    if grad:
        rows += [{"epoch": 0, "step": step, "grad/norm": grad(step)} for step in range(200)]
    return rows


def ridge_heights(fig, norm: str, where: str) -> dict[int, np.ndarray]:
    """step -> the ridge's height above its baseline (the baseline is the tick labelled `step <s>`)."""
    lines = {int(line.get_gid().split(":")[3]): line for ax in fig.axes for line in ax.lines
             if (line.get_gid() or "").startswith(f"hist:{norm}:{where}:")}
    heights = {}
    for step, line in lines.items():
        ticks = dict(zip((t.get_text() for t in line.axes.get_yticklabels()), line.axes.get_yticks()))
        heights[step] = np.asarray(line.get_ydata()) - ticks[f"step {step}"]
    return heights


def test_ridges_are_the_histograms_as_densities_oldest_at_the_back(tmp_path, drawn):
    root = tmp_path / "runs"
    counts = {step: [0, step, 1, 2 * step + 3, 0, 0] for step in range(0, 30, 2)}  # 15 steps: 12 ridges drawn
    for norm, seed in (("bn", 1), ("bn", 0), ("gn", 0)):
        run = write_run(root, norm, 8, seed, "completed", 0.8, rows=[{"epoch": 0, "step": 0, "train/loss": 1.0}])
        # each seed and place its own counts; empty bins stay empty
        lines = [histogram_line(step, layer, channel, where, [c and c + 7 * (where == "after") + seed for c in row],
                                below=3, above=1)
                 for step, row in counts.items() for layer in (SHALLOW, DEEP) for channel in (2, 1)
                 for where in ("before", "after")]
        (run / HISTOGRAM_FILE).write_text("".join(lines))
    plot_activation_histograms(load_runs(root)[0], tmp_path / "h.png", "t")
    (fig,) = drawn
    assert len(fig.axes) == 4  # rows bn, gn; columns before, after
    assert [ax.get_title() for ax in fig.axes[:2]] == [f"bn (seed 0) · {DEEP}, channel 1: before the norm",
                                                      f"bn (seed 0) · {DEEP}, channel 1: after the norm"]
    width = 6.0 / 6  # range [-3, 3], 6 bins
    for norm in ("bn", "gn"):
        for where in ("before", "after"):
            heights = ridge_heights(fig, norm, where)
            steps = sorted(heights)
            assert len(steps) == MAX_RIDGES and steps[0] == 0 and steps[-1] == 28  # first and last kept
            for step, height in heights.items():
                row = [c and c + 7 * (where == "after") for c in counts[step]]  # seed 0's
                assert np.allclose(height, np.array(row) / (sum(row) + 3 + 1) / width)
    assert all(ax.get_xlim() == (-3.0, 2.0) for ax in fig.axes)  # bins 1-3 hold values: them and one bin more
    wide = {"bins": 100, "range": [0, 100], "counts": [1] + [0] * 49 + [1000] + [0] * 48 + [1], "below": 0, "above": 0}
    assert value_window([wide]) == (49.0, 52.0)  # two far values out of 1002 (0.1 % each) leave the peak readable
    ax = fig.axes[0]
    ticks = dict(zip((t.get_text() for t in ax.get_yticklabels()), ax.get_yticks()))
    steps = sorted(int(label.removeprefix("step ")) for label in ticks)
    bases = [ticks[f"step {step}"] for step in steps]
    assert bases[-1] == 0 and np.all(np.diff(bases) < 0)  # time from the back (top) to the front (bottom)
    z = [next(line for line in ax.lines if line.get_gid() == f"hist:bn:before:{step}").get_zorder() for step in steps]
    assert np.all(np.diff(z) > 0)  # each newer ridge drawn over the older ones


def mean(step, channel):
    return 0.1 * step - channel


def var(step, channel):
    return (1 + channel + step / 10) ** 2


def test_channel_means_with_std_bands_and_the_coherence_of_grouped_norms(tmp_path, drawn):
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 0, "completed", 0.8, rows=activation_rows(range(0, 20, 4), mean, var))
    write_run(root, "gn", 8, 0, "completed", 0.8,
              rows=activation_rows(range(0, 20, 4), lambda s, c: 2 * mean(s, c), var, coherence=lambda s: s / 20))
    plot_channel_means(load_runs(root)[0], tmp_path / "m.png", "t")
    (fig,) = drawn
    steps = [0, 4, 8, 12, 16]
    for norm, factor in (("bn", 1), ("gn", 2)):
        for channel in (0, 1):
            line = artist(fig, f"mean:{norm}:{channel}")
            assert line.get_xdata().tolist() == steps
            assert np.allclose(line.get_ydata(), [factor * mean(s, channel) for s in steps])
            assert DEEP in line.axes.get_title() and line.get_label() == f"channel {channel}"
            edges = band_edges(artist(fig, f"std:{norm}:{channel}"))
            for s in steps:  # ± √var
                centre, std = factor * mean(s, channel), 1 + channel + s / 10
                assert edges[float(s)] == pytest.approx((centre - std, centre + std))
    coherence = artist(fig, "coherence:gn:mean")
    assert coherence.get_xdata().tolist() == steps and np.allclose(coherence.get_ydata(), [s / 20 for s in steps])
    assert np.allclose(artist(fig, "coherence:gn:logvar").get_ydata(), [s / 40 for s in steps])
    assert not fig.axes[1].lines and not fig.axes[1].axison  # bn does not group channels
    assert "no group coherence" in fig.axes[1].texts[0].get_text()


def test_gradient_norms_one_line_per_norm_on_a_log_axis(tmp_path, drawn):
    root = tmp_path / "runs"
    for norm, seed, grad in (("none", 0, lambda s: 100.0 + s), ("gn", 1, lambda s: 7.0),
                             ("gn", 0, lambda s: 2.0 if s < 100 else 50.0)):
        write_run(root, norm, 8, seed, "completed", 0.8, rows=activation_rows([0], mean, var, grad=grad))
    plot_grad_norms(load_runs(root)[0], tmp_path / "g.png", "t")
    (fig,) = drawn
    (ax,) = fig.axes
    assert ax.get_yscale() == "log"
    raw = artist(fig, "grad_raw:none")
    assert raw.get_xdata().tolist() == list(range(200))
    assert np.allclose(raw.get_ydata(), [100.0 + s for s in range(200)])
    gn = artist(fig, "grad_raw:gn")  # the lowest seed's run, not seed 1's constant 7
    assert np.allclose(gn.get_ydata(), [2.0 if s < 100 else 50.0 for s in range(200)])
    bold = artist(fig, "grad:gn").get_ydata()  # bin means: 2 up to step 99, 50 from 100
    assert len(bold) <= 60 and bold[0] == 2.0 and bold[-1] == 50.0 and np.all(np.diff(bold) >= 0)
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["gn (seed 0)", "none (seed 0)"]
    write_run(tmp_path / "one", "gn", 8, 0, "completed", 0.8, rows=activation_rows([0], mean, var, grad=lambda s: 1.0))
    assert plot_grad_norms(load_runs(tmp_path / "one")[0], tmp_path / "g1.png", "t") is None  # nothing to overlay


def test_the_histogram_and_channel_figures_look(tmp_path, drawn):
    """Ridges in viridis from the first step to the last, each over a white fill hiding the older ones;
    channel means in tab10 per channel with faint bands; the coherence black, solid for means and dashed
    for log-variances, on a 0–1 axis; a panel without coherence switched off with one centred sentence."""
    root = tmp_path / "runs"
    for norm, coherence in (("bn", None), ("gn", lambda s: s / 20)):
        run = write_run(root, norm, 8, 0, "completed", 0.8, rows=activation_rows(range(0, 20, 4), mean, var,
                                                                                  coherence=coherence))
        (run / HISTOGRAM_FILE).write_text("".join(histogram_line(step, DEEP, 0, where, [1, 2, 1])
                                                  for step in (0, 5, 10) for where in ("before", "after")))
    runs, _ = load_runs(root)
    plot_activation_histograms(runs, tmp_path / "h.png", "t")
    plot_channel_means(runs, tmp_path / "m.png", "t")
    histograms, means = drawn
    assert tuple(histograms.get_size_inches()) == (11, 3.6 * 2)
    ax = histograms.axes[0]
    ridges = [line for line in ax.lines if (line.get_gid() or "").startswith("hist:")]
    viridis = plt.get_cmap("viridis")
    assert [(to_hex(r.get_color()), r.get_linewidth(), r.get_zorder()) for r in ridges] == [
        (to_hex(viridis(k / 2)), 1.0, 2 * k + 1) for k in range(3)]
    assert [(to_hex(f.get_facecolor()[0]), f.get_zorder()) for f in ax.collections] == [("#ffffff", 2 * k)
                                                                                        for k in range(3)]
    assert {t.get_fontsize() for t in ax.get_yticklabels()} == {7} and ax.get_xlabel() == "value"
    assert {ax.title.get_fontsize() for ax in histograms.axes} == {9}
    assert text_of(histograms._suptitle) == ("Channel histograms over training: t\n(density; back/top: the first "
                                             "measured step, front/bottom: the last; x: the central 99 % of each "
                                             "histogram's values)", 10)

    assert tuple(means.get_size_inches()) == (12, 3.4 * 2)
    bn_means, bn_right, gn_means, gn_right = means.axes
    tab10 = plt.get_cmap("tab10")
    assert look(artist(means, "std:gn:1")) == {"label": None, "alpha": 0.15, "colour": to_hex(tab10(1)), "width": 0.0}
    line = artist(means, "mean:gn:1")
    assert (to_hex(line.get_color()), line.get_label()) == (to_hex(tab10(1)), "channel 1")
    assert text_of(gn_means.title) == (f"gn (seed 0) · {DEEP}: channel means before the norm (± std)", 9)
    assert (gn_means.get_xlabel(), gn_means.get_ylabel()) == ("training step", "mean over (N, H, W)")
    assert {t.get_fontsize() for ax in (gn_means, gn_right) for t in ax.get_legend().get_texts()} == {8}
    assert [(a.get_gid(), to_hex(a.get_color()), a.get_linestyle(), a.get_label()) for a in gn_right.lines] == [
        ("coherence:gn:mean", "#000000", "-", "η² of the channel means"),
        ("coherence:gn:logvar", "#000000", "--", "η² of the channel log-variances")]
    assert gn_right.get_ylim() == (0, 1.02)
    assert (gn_right.get_xlabel(), gn_right.get_ylabel()) == ("training step", "η² (between-group share)")
    assert text_of(gn_right.title) == (f"gn · {DEEP}: group coherence η² (1: a group's channels share the statistic)",
                                       9)
    (sentence,) = bn_right.texts
    assert (sentence.get_text(), sentence.get_position(), sentence.get_ha(), sentence.get_va()) == (
        "bn does not group channels: no group coherence", (0.5, 0.5), "center", "center")
    assert text_of(means._suptitle) == ("Channel statistics before the norm over training: t", 10)


def test_the_gradient_norm_figure_looks(tmp_path, drawn):
    """Every logged step thin and faint, the bin means bold; one line style per seed, cycling after four;
    the legend outside the axes on the right, inside the figure; a long title wrapped at 100 characters."""
    root = tmp_path / "runs"
    for norm, seeds in (("bn", (0,)), ("gn", (0, 1, 2, 3, 4))):
        for seed in seeds:
            write_run(root, norm, 8, seed, "completed", 0.8, rows=activation_rows([0], mean, var,
                                                                                  grad=lambda s: 1.0 + seed))
    title = "a comparison " * 12  # 156 characters
    plot_grad_norms(load_runs(root)[0], tmp_path / "g.png", title, every_seed=True)
    plot_grad_norms(load_runs(root)[0], tmp_path / "g1.png", "t")
    every, first = drawn
    (ax,) = every.axes
    assert tuple(every.get_size_inches()) == (9, 4.4)
    gn = to_hex(plt.get_cmap("tab10")(2))
    raw = artist(every, "grad_raw:gn:s3")
    assert (to_hex(raw.get_color()), raw.get_linewidth(), raw.get_alpha(), raw.get_label().startswith("_")) == (
        gn, 0.4, 0.35, True)
    assert [(artist(every, f"grad:gn:s{s}").get_linestyle(), artist(every, f"grad:gn:s{s}").get_linewidth())
            for s in range(5)] == [("-", 1.8), ("--", 1.8), (":", 1.8), ("-.", 1.8), ("-", 1.8)]
    assert artist(first, "grad:gn").get_linestyle() == "-" and artist(first, "grad:gn").get_label() == "gn (seed 0)"
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("training step", "gradient L2 norm (all parameters)")
    heading, *wrapped = ax.get_title().split("\n")
    assert heading == "Gradient L2 norm per step (thin: every logged step; bold: means in ≤ 60 bins)"
    assert wrapped == textwrap.wrap(title, 100) and len(wrapped) == 2 and ax.title.get_fontsize() == 9
    legend = ax.get_legend()
    assert legend.get_title().get_text() == "norm" and {t.get_fontsize() for t in legend.get_texts()} == {8}
    renderer = every.canvas.get_renderer()
    box, axes_box = legend.get_window_extent(renderer), ax.get_window_extent(renderer)
    assert box.x0 > axes_box.x1 and 0 <= axes_box.y1 - box.y1 < 10  # beside the axes, at its top (legend padding)
    assert box.x1 <= every.bbox.width  # the layout made room for it: nothing cut off


def noise_runs(root):
    """bn and gn, seeds 0 and 1, without and with output noise; constant grad/norm per run, gn seed 1 low."""
    noise = {"noise_mean": 1e-3, "noise_std": 1.001, "noise_granularity": "element"}
    levels = {}
    for norm_options, tag in ((None, "clean"), (noise, "noisy")):
        for norm in ("bn", "gn"):
            for seed in (0, 1):
                level = 0.1 if (norm, seed) == ("gn", 1) else 2.0 + seed
                write_run(root, norm, 128, seed, "completed", 0.8, model={"norm_options": norm_options},
                          run_name=f"{norm}_{tag}_s{seed}",
                          rows=[{"epoch": 0, "step": s, "grad/norm": level} for s in range(0, 100, 10)])
                levels[(norm, seed)] = level
    return levels


def test_under_output_noise_the_report_draws_every_seeds_gradient_norm(tmp_path):
    # GN paper, Figure 5: one seed of three collapsing is what a first-seed figure would miss. Only the
    # noisy group (no activation statistics anywhere) gets the figure.
    root = tmp_path / "runs"
    noise_runs(root)
    out = tmp_path / "report"
    main(["report", str(root), "--out", str(out)])
    text = (out / "report.md").read_text()
    section = text[text.index("## Gradient norm under output noise"):]
    (figure,) = sorted(out.glob("noise_grad_norm_*.png"))
    assert text.count("](noise_grad_norm_") == 1 and "noise_granularity: element" in section.split(figure.name)[0]
    assert "Activation statistics" not in text and not list(out.glob("grad_norm_*"))


def test_every_seed_gradient_norm_lines_per_norm_and_seed(tmp_path, drawn):
    levels = noise_runs(tmp_path / "runs")
    noisy = [r for r in load_runs(tmp_path / "runs")[0] if "noisy" in r.name]
    plot_grad_norms(noisy, tmp_path / "g.png", "t", every_seed=True)
    (fig,) = drawn
    for (norm, seed), level in levels.items():
        assert np.allclose(artist(fig, f"grad_raw:{norm}:s{seed}").get_ydata(), level)
        assert np.allclose(artist(fig, f"grad:{norm}:s{seed}").get_ydata(), level)
    assert artist(fig, "grad:gn:s0").get_linestyle() != artist(fig, "grad:gn:s1").get_linestyle()
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == [
        "bn (seed 0)", "bn (seed 1)", "gn (seed 0)", "gn (seed 1)"]


def test_a_report_without_activation_statistics_has_no_such_figures(tmp_path):
    root = tmp_path / "runs"
    for norm in ("bn", "gn"):  # every run logs grad/norm (the explosion detector): not enough for the figures
        write_run(root, norm, 8, 0, "completed", 0.8,
                  rows=[{"epoch": 0, "step": s, "train/loss": 1.0, "grad/norm": 1.0 + s} for s in range(10)])
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text(REPORT_HEADING + "\n")
    (out / "grad_norm_00.png").write_bytes(b"an earlier report's figure")
    main(["report", str(root), "--out", str(out)])
    text = (out / "report.md").read_text()
    assert "Activation statistics" not in text and "grad_norm" not in text
    assert not list(out.glob("grad_norm_*")) and not list(out.glob("activation_hist_*"))  # the stale one removed
    assert all(FIGURE_NAME.fullmatch(name) for name in ("activation_hist_00.png", "channel_means_12.png",
                                                        "grad_norm_03.png"))


def test_a_damaged_histogram_file_is_named_and_the_rest_is_drawn(tmp_path, capsys):
    root = tmp_path / "runs"
    for norm in ("bn", "gn"):
        run = write_run(root, norm, 8, 0, "completed", 0.8,
                        rows=activation_rows([0, 2], mean, var, grad=lambda s: 1.0))
        (run / HISTOGRAM_FILE).write_text(histogram_line(0, DEEP, 0, "before", [1, 2], value_range=(1, -1)))
    out = tmp_path / "report"
    main(["report", str(root), "--out", str(out)])
    err = capsys.readouterr().err
    assert err.count("no activation histograms for") == 2 and "range [lo, hi] of finite numbers with lo < hi" in err
    text = (out / "report.md").read_text()
    assert "## Run files left out" in text and "no activation histograms for" in text
    assert "channel_means_00.png" in text and "grad_norm_00.png" in text and "activation_hist_00" not in text


FAKE_MNIST_SIZES = {"n_train": 192, "n_test": 32}  # 128 training images / batch 32: 4 steps per epoch
EVERY = 2


@pytest.fixture(scope="module")
def fitted(data_dir, tmp_path_factory):
    """Two real runs (bn and gn) of the quickstart model with the activations preset, and their report."""
    root = tmp_path_factory.mktemp("runs")
    for norm in ("bn", "gn"):
        main(tiny_args(data_dir, root, "--data", "datamodules.MNISTDataModule", "--model.norm", norm,
                       "--config", str(ROOT / "configs/presets/activations.yaml"),
                       "--activation_stats.every_n_steps", str(EVERY), "--test_after_fit", "false",
                       "--trainer.log_every_n_steps", "1"))
    out = root / "report"
    main(["report", str(root), "--out", str(out)])
    return root, out


def csv_column(run_dir, key) -> tuple[list[int], list[float]]:
    """A metrics.csv column read with the csv module (not the report's reader)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        cells = {int(row["step"]): float(row[key]) for row in csv.DictReader(f) if row.get(key)}
    return sorted(cells), [cells[s] for s in sorted(cells)]


def test_the_figures_of_real_runs_plot_their_files(fitted, drawn):
    root, _ = fitted
    runs, _ = load_runs(root)
    by_norm = {run.axis("norm"): run.path for run in runs}
    plot_activation_histograms(runs, root / "h.png", "t")
    plot_channel_means(runs, root / "m.png", "t")
    plot_grad_norms(runs, root / "g.png", "t")
    hist, means, grads = drawn
    for norm, run_dir in by_norm.items():
        records = read_histograms(run_dir / HISTOGRAM_FILE)
        deep = max({r["layer"] for r in records}, key=lambda p: int(p.rsplit(".", 1)[1]))
        for where in ("before", "after"):
            heights = ridge_heights(hist, norm, where)
            assert sorted(heights) == list(range(0, 8, EVERY))  # 2 epochs × 4 steps, every 2nd measured
            for step, height in heights.items():
                (record,) = [r for r in records
                             if (r["step"], r["layer"], r["channel"], r["where"]) == (step, deep, 0, where)]
                total = sum(record["counts"]) + record["below"] + record["above"]
                assert np.allclose(height, np.array(record["counts"]) / total / (12 / 60))  # range [-6, 6], 60 bins
        for channel in (0, 1, 2):
            steps, values = csv_column(run_dir, f"activation/{deep}/mean@{channel}")
            line = artist(means, f"mean:{norm}:{channel}")
            assert line.get_xdata().tolist() == steps == list(range(0, 8, EVERY))
            assert np.allclose(line.get_ydata(), values)
        steps, values = csv_column(run_dir, "grad/norm")
        raw = artist(grads, f"grad_raw:{norm}")
        assert raw.get_xdata().tolist() == steps and np.allclose(raw.get_ydata(), values)
    assert len(artist(means, "coherence:gn:mean").get_xdata()) == 4
    assert not means.axes[1].lines  # bn's coherence panel is empty


def test_the_report_links_the_three_figures_of_real_runs(fitted):
    _, out = fitted
    text = (out / "report.md").read_text()
    section = text[text.index("## Activation statistics"):]
    title = "quickstart · mnist · small_cnn · bs 32 · lr 0.003"
    figures = [line for caption, name in (("Channel histograms over training", "activation_hist_00.png"),
                                          ("Channel means over training", "channel_means_00.png"),
                                          ("Gradient L2 norm per step", "grad_norm_00.png"))
               for line in (f"**{caption}**", "", f"![{caption}: {title}]({name})", "")]
    assert section[:section.index("\n## ") + 1].splitlines() == [
        "## Activation statistics", "",
        "The course report's TensorBoard views (Sridhar, Azim & Talegaonkar 2018, §III), from runs with "
        "`configs/presets/activations.yaml`; per norm its first seed and the deepest measured layer. Histograms: one "
        "channel's values before and after the norm as a density, the first measured step at the back (top), the "
        "last at the front (bottom). Channel means: each chosen channel's mean over (N, H, W) before the norm, ± one "
        "standard deviation, and for grouped norms the group coherence η² (1: the channels of a group share the "
        "statistic). Gradient L2 norm: `grad/norm` of the norms overlaid, log axis.", "",
        f"### {title}", "", *figures]
    for name in ("activation_hist_00.png", "channel_means_00.png", "grad_norm_00.png"):
        assert f"]({name})" in section
        image = matplotlib.image.imread(out / name)
        assert image.ndim == 3 and image.shape[0] > 300 and image[..., :3].std() > 0.05  # not a blank canvas
