"""`lightning report` on synthetic run directories written here in the stable format (config.yaml,
summary.json, CSV-logger metrics.csv): the accuracy table against hand-computed numbers, the
learning-rate envelope against a hand computation, and every PNG the report links."""
import json
import math
import os
import re
import socket
import time
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from lightning_app.command import main
from lightning_app.report import command
from lightning_app.report.command import check_out_dir
from lightning_app.report.figures import envelope
from lightning_app.report.runs import Series, load_runs, read_metrics
from tests.helpers import error_line, snapshot
from tests.lightning_app.readme_table import assert_documented
from tests.lightning_app.report.report_runs import write_metrics_csv, write_run
from tests.lightning_app.report.test_report_landscape_study import study_root
from tests.lightning_app.report.test_report_paper_claims import run as claim_run

@pytest.fixture
def runs_root(tmp_path):
    root = tmp_path / "runs"
    for norm, bs, seed, status, acc in [
        ("bn", 8, 0, "completed", 0.90), ("bn", 8, 1, "completed", 0.92), ("bn", 32, 0, "completed", 0.94),
        ("bn", 32, 1, "failed", 0.10),  # not finished: left out of the table
        ("gn", 8, 0, "completed", 0.88), ("gn", 8, 1, "completed", 0.86), ("gn", 32, 0, "completed", 0.85),
        ("gn_plus_gn_first", 8, 0, "exploded", None), ("gn_plus_gn_first", 8, 1, "exploded", None),
        ("gn_plus_gn_first", 32, 0, "completed", 0.89), ("gn_plus_gn_first", 32, 1, "exploded", None),
    ]:
        write_run(root, norm, bs, seed, status, acc, landscape=seed == 0 and status == "completed")
    write_run(root, "gn", 32, 0, "completed", 0.80, lr=0.01)  # a second learning rate: its own table, an envelope
    write_run(root, "bn", 32, 0, "completed", 0.91, lr=0.01)
    return root


def test_the_report_whole_with_every_kind_of_section(runs_root, tmp_path, drawn, capsys):
    """report.md compared whole with expected_report.md, a file read line by line against these runs: the
    numbers are the hand computations of the tests around it (the lr 0.1 table, σ(λ) 0.618 / 0.786, the
    noise claims), the rest is what a reader reads: headings, introductions, figure links in numeric group
    order, the notes on a broken run and on a duplicate, the runs table. The figures are kept, not saved."""
    noise = {"norm_options": {"noise_mean": 0.0, "noise_std": 1.001, "noise_granularity": "element"}}
    for seed in (0, 1):
        claim_run(runs_root, "noise", "bn", seed, model=noise, best=0.40, loss=0.8 if seed == 0 else 1.2, grad=1.0)
        claim_run(runs_root, "noise", "gn", seed, model=noise, best=0.10, vanish=seed == 0,
                  loss=2.3 if seed == 0 else 0.9, grad=1e-9)
    again = write_run(runs_root, "gn", 32, 0, "completed", 0.80, lr=0.01, run_name="gn_again")  # a duplicate
    os.utime(again / "summary.json", (time.time() + 3600, time.time() + 3600))  # the newer: the one counted
    broken = write_run(runs_root, "bn", 8, 5, "completed", 0.5, run_name="broken")
    (broken / "summary.json").write_text("{not json")
    out = tmp_path / "report"
    main(["report", str(runs_root), "--out", str(out)])
    expected = (Path(__file__).parent / "expected_report.md").read_text()
    assert (out / "report.md").read_text().replace(str(tmp_path), "<tmp>") == expected
    assert capsys.readouterr().out == f"normlab: report {out / 'report.md'} (18 runs, 9 figures)\n"
    assert len(drawn) == 9


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n### ", start + 1)
    return text[start:end if end != -1 else None]


def test_report_table_matches_a_hand_computation(runs_root, tmp_path, capsys, drawn):
    out = tmp_path / "report"
    main(["report", str(runs_root), "--out", str(out)])
    text = (out / "report.md").read_text()
    assert f"13 runs under `{runs_root}`: 9 completed, 3 exploded, 1 failed, 0 interrupted, 0 running." in text
    assert "| `study/fashion_mnist_small_cnn_bn_bs32_lr0.1_s1_abc123` | failed | bn | 32 |" in text  # listed
    table = section(text, "### study · fashion_mnist · small_cnn · lr 0.1\n")
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert rows[0] == "| Batch size | bn | gn | gn_plus_gn_first |"
    # bn bs8: 90, 92 -> 91.00 ± 1.41 (sample std √2); gn bs8: 88, 86 -> 87.00 ± 1.41
    assert rows[2] == "| 8 | 91.00 ± 1.41 | 87.00 ± 1.41 | – |"  # every gn_plus seed exploded
    assert rows[3] == "| 32 | 94.00 | 85.00 | 89.00 † |"  # bn seed 1 failed: not counted
    # Mean over batch sizes; Variance = sample variance: bn (91, 94) -> 4.50, gn (87, 85) -> 2.00
    assert rows[4] == "| Mean | 92.50 | 86.00 | 89.00 |"
    assert rows[5] == "| Variance | 4.50 | 2.00 | – |"
    assert "–: training exploded (every seed)" in table
    assert "†: batch size 32, gn_plus_gn_first: 1 of 2 seeds exploded" in table
    other_lr = section(text, "### study · fashion_mnist · small_cnn · lr 0.01\n")
    assert "| 32 | 91.00 | 80.00 |" in other_lr
    assert f"normlab: report {out / 'report.md'} (13 runs" in capsys.readouterr().out


def test_report_writes_every_figure_it_links(runs_root, tmp_path):
    out = tmp_path / "report"
    main(["report", str(runs_root), "--out", str(out)])
    text = (out / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    for heading in ("## σ(λ) of the GNPlus layers", "## Landscape", "## Learning-rate envelope", "## Training curves"):
        assert heading in text
    # the lr 0.1 table spans two batch sizes: accuracy and final σ(λ) against batch size, λ trajectories
    for prefix in ("accuracy_vs_batch_", "lambda_"):
        assert sum(p.startswith(prefix) for p in linked) == 1, prefix
    # gn_plus completed only at batch 32: its final σ(λ) is a one-row table, not a curve over batch sizes
    assert not any(p.startswith("final_lambda_") for p in linked)
    assert "| 32 | 0.618 | 0.786 |" in text  # σ(λ) at the last logged step 28: 0.73 − 0.004·28, 0.73 + 0.002·28
    assert any(p.startswith("landscape_") for p in linked) and any(p.startswith("curves_") for p in linked)
    assert sum(p.startswith("lr_envelope_") for p in linked) == 1  # only bs 32 has runs at two learning rates
    for rel in linked:
        image = matplotlib.image.imread(out / rel)
        assert (out / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert image.shape[0] > 300 and image.shape[1] > 500
        assert image[..., :3].std() > 0.05  # something was drawn
        if rel.startswith("lr_envelope_"):
            assert image.shape[:2] == (462, 770)  # 7 × 4.2 inches at 110 dpi


def test_a_second_report_replaces_the_first_and_leaves_no_stale_figure(runs_root, tmp_path, figure_files):
    out = tmp_path / "report"
    main(["report", str(runs_root), "--out", str(out)])
    (out / "curves_07.png").write_bytes(b"a figure of runs this report no longer describes")
    (out / "notes.txt").write_text("the researcher's own notes")
    main(["report", str(runs_root), "--out", str(out)])
    linked = set(re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / "report.md").read_text()))
    assert {p.name for p in out.glob("*.png")} == linked  # every figure in the folder is one the report shows
    assert (out / "notes.txt").read_text() == "the researcher's own notes"


@pytest.mark.parametrize("place", ["a file", "a folder of other files", "a run directory"])
def test_the_report_never_writes_over_what_is_not_a_report(runs_root, tmp_path, capsys, place):
    out = {"a file": tmp_path / "figure.png", "a folder of other files": tmp_path / "paper",
           "a run directory": next(runs_root.glob("*/*"))}[place]
    if place == "a file":
        out.write_bytes(b"not a folder")
    elif place == "a folder of other files":
        out.mkdir()
        (out / "curves_00.png").write_bytes(b"the paper's own figure")
    before = snapshot(tmp_path)
    message = error_line(capsys, lambda: main(["report", str(runs_root), "--out", str(out)]))
    expected = (f"{out} is a file, but the report needs a directory there; move it away or set --out to write "
                "elsewhere" if place == "a file" else
                f"--out {out} holds other files and no normlab report.md; set --out to a new or empty directory, or "
                "to a previous report's")
    assert message == expected
    if place != "a run directory":  # the README's example folder is …/paper
        assert_documented("the report's `--out` is a file or a folder of other files", message)
    assert snapshot(tmp_path) == before


def test_a_run_killed_while_running_is_reported_killed_not_running(tmp_path):
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 0, "completed", 0.9)
    killed = write_run(root, "gn", 8, 0, "running", None)
    # its lock file as the dead process left it: this host, nobody holding it (checked with flock)
    (killed / "run.lock").write_text(json.dumps({"pid": 999999, "host": socket.gethostname()}))
    with open(killed / "metrics.csv", "a") as f:
        f.write("0,2.3")  # the row the kill cut short, without its newline
    out = tmp_path / "report"
    main(["report", str(root), "--out", str(out)])
    text = (out / "report.md").read_text()
    assert "2 runs under" in text and "1 completed, 0 exploded, 0 failed, 0 interrupted, 0 running, 1 killed." in text
    assert f"| `study/{killed.name}` | killed |" in text
    assert "no curves for" not in text  # the killed run's complete rows are still read
    assert read_metrics(killed / "metrics.csv")["train/loss"].values.size > 0


def test_lr_envelope_is_min_and_max_across_runs_at_each_step():
    def series(steps, values):
        return Series(np.array(steps), np.zeros(len(steps), dtype=int), np.array(values, dtype=float))

    steps, low, high = envelope([series([0, 10, 20], [3, 2, 1]), series([0, 10, 20], [1, 4, 0.5]),
                                 series([0, 10], [2, math.inf])])  # the third run exploded at step 10
    assert steps.tolist() == [0, 10, 20]
    assert low.tolist() == [1, 2, 0.5] and high.tolist() == [3, 4, 1]


def test_read_metrics_splits_sparse_rows_and_keeps_the_latest_of_a_repeated_step(tmp_path):
    path = tmp_path / "metrics.csv"
    write_metrics_csv(path, [{"epoch": 0, "step": 0, "train/loss": 2.0}, {"epoch": 0, "step": 9, "val/acc": 0.5},
                             {"epoch": 0, "step": 2, "train/loss": 1.5},
                             {"epoch": 0, "step": 2, "train/loss": 1.4}])  # resumed: step 2 again
    metrics = read_metrics(path)
    assert metrics["train/loss"].steps.tolist() == [0, 2] and metrics["train/loss"].values.tolist() == [2.0, 1.4]
    assert metrics["val/acc"].steps.tolist() == [9] and metrics["val/acc"].epochs.tolist() == [0]


def test_a_bad_report_option_is_one_line_and_writes_nothing(runs_root, capsys):
    message = error_line(capsys, lambda: main(["report", str(runs_root), "--metric", "acc"]))
    assert message == "metric: got 'acc', expected one of 'final_val_acc', 'best_val_acc', 'test_acc'"
    assert_documented("a `lightning sweep` or `lightning report` option with a bad value", message)
    assert not (runs_root / "report").exists()
    assert error_line(capsys, lambda: main(["report"])) == "the following arguments are required: runs_dir"


def test_no_runs_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["report", str(tmp_path)])
    assert info.value.code == 2
    assert capsys.readouterr().err.strip() == (f"normlab: error: no run directories (with summary.json and "
                                               f"config.yaml) under {tmp_path}")


REPORT_HELP = """\
usage: lightning report [--out OUT]
                        [--metric {final_val_acc,best_val_acc,test_acc}]
                        runs_dir

Reads every finished run directory under RUNS_DIR (config.yaml, summary.json,
metrics.csv; never W&B, so it works offline) and writes DIR/report.md (default
RUNS_DIR/report) with PNG figures beside it, all atomically: accuracy tables
in the GN paper's layout with accuracy against batch size, final σ(λ) per
layer (table and figure) and λ trajectories (tables.py, batch_figures.py),
training curves against images seen, landscape bands and the learning-rate
envelope (figures.py), and where runs measured their norm layers the course
report's histograms, channel means and gradient norms (activation_figures.py),
and under output noise every seed's gradient norm. Runs are grouped by what
they share (groups.py): a table, its curves and λ figures hold runs that
differ only in norm, batch size, seed and the values tied to the batch size; a
landscape figure and the activation figures runs that differ only in norm and
seed; an envelope runs that differ only in norm, LR and seed. The same science
under two run names counts once; unreadable run files are named and skipped.

positional arguments:
  runs_dir              a folder of run directories (searched recursively)
                        (required, type: <class 'Path'>)

options:
  -h, --help            Show this help message and exit.
  --out OUT             where report.md and the PNGs go (default:
                        RUNS_DIR/report) (type: Path | null, default: null)
  --metric {final_val_acc,best_val_acc,test_acc}
                        the accuracy in the tables (type:
                        Literal['final_val_acc', 'best_val_acc', 'test_acc'],
                        default: final_val_acc)
"""


def test_the_help_says_what_the_report_reads_and_writes_and_each_option(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")  # argparse wraps to the terminal's width
    with pytest.raises(SystemExit) as info:
        main(["report", "--help"])
    assert info.value.code == 0 and capsys.readouterr().out == REPORT_HELP


@pytest.mark.parametrize("first_line", ["# normlab report \n", "# normlab reportX\n", "# normlab\n"])
def test_a_folder_counts_as_a_report_only_when_its_first_line_is_the_heading_exactly(runs_root, tmp_path, capsys,
                                                                                    figure_files, first_line):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.md").write_text(first_line + "a look-alike\n")
    message = error_line(capsys, lambda: main(["report", str(runs_root), "--out", str(out)]))
    assert message.startswith(f"--out {out} holds other files and no normlab report.md")
    (out / "report.md").write_text("# normlab report\nan earlier report\n")
    main(["report", str(runs_root), "--out", str(out)])  # the exact heading: replaced
    assert (out / "report.md").read_text().startswith("# normlab report\n\n13 runs under")


def test_an_out_folder_this_user_cannot_write_is_refused_with_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr("lightning_app.run.paths.os.access", lambda path, mode: False)  # as a non-owner sees it
    with pytest.raises(ValueError) as error:
        check_out_dir(tmp_path / "report")
    assert str(error.value) == f"cannot write to {tmp_path} (permission denied); set --out to a directory you can write"


def test_without_out_the_report_goes_to_runs_dir_report_and_metric_picks_the_tables_accuracy(tmp_path, figure_files):
    root = tmp_path / "runs"
    write_run(root, "bn", 8, 0, "completed", 0.90, summary={"best_val_acc": 0.95})
    main(["report", str(root), "--metric", "best_val_acc"])
    text = (root / "report" / "report.md").read_text()
    assert "## Accuracy (best validation accuracy, %)" in text and "| 8 | 95.00 |" in text
    main(["report", str(root), "--out", str(tmp_path / "new" / "nested" / "report")])  # parents made too
    assert (tmp_path / "new" / "nested" / "report" / "report.md").read_text().startswith(
        f"# normlab report\n\n1 run under `{root}`:")


def test_a_paired_figure_with_nothing_to_draw_keeps_its_label_and_links_nothing(tmp_path, monkeypatch, drawn):
    monkeypatch.setattr(command, "plot_pair", lambda *args: None)  # as for a pair whose bands are all NaN
    runs, _ = load_runs(study_root(tmp_path))
    report, figures = command.write_report(runs, tmp_path / "report", source="runs")
    text = report.read_text()
    assert "**Figure 6: gn vs bn**" in text and "paper_landscape_" not in text
    assert not any(p.name.startswith("paper_landscape_") for p in figures)


def test_a_runs_table_row_without_epochs_or_wall_time(tmp_path, figure_files):
    root = tmp_path / "runs"
    run_dir = write_run(root, "bn", 8, 0, "completed", 0.9)
    summary = json.loads((run_dir / "summary.json").read_text())
    del summary["epochs"], summary["wall_seconds"]
    (run_dir / "summary.json").write_text(json.dumps(summary))
    main(["report", str(root), "--out", str(tmp_path / "report")])
    row = next(line for line in (tmp_path / "report" / "report.md").read_text().splitlines() if run_dir.name in line)
    assert row == f"| `study/{run_dir.name}` | completed | bn | 8 | 0.1 | 0 | 90.00 | 90.00 | 90.00 |  | 0 |"


def test_titles_name_a_shared_weight_decay_and_each_figure_carries_its_groups_title(tmp_path, drawn):
    root = tmp_path / "runs"
    for norm in ("bn", "gn"):
        for bs, lr in ((8, 0.1), (32, 0.1), (8, 0.01)):
            write_run(root, norm, bs, 0, "completed", 0.9, lr=lr, landscape=True, model={"weight_decay": 5e-4})
    report, _ = command.write_report(load_runs(root)[0], tmp_path / "report", source="runs")
    text = report.read_text()
    table, landscape = "study · fashion_mnist · small_cnn · lr 0.1 · wd 0.0005", "study · fashion_mnist · small_cnn"
    assert f"\n### {table}\n" in text and f"\n**{landscape} · bs 8 · lr 0.1 · wd 0.0005**\n" in text
    titles = [fig._suptitle.get_text() if fig._suptitle else fig.axes[0].get_title() for fig in drawn]
    # lr 0.1: accuracy, curves, a landscape per batch size; lr 0.01: curves, a landscape; an LR envelope at bs 8;
    # and the GN paper's Figure 8 (gn vs bn under L2), whose title names the L2 itself
    *grouped, paired = titles
    assert len(grouped) == 7 and all(" wd 0.0005" in t for t in grouped)
    assert "Learning-rate envelope: study · fashion_mnist · small_cnn · bs 8 · wd 0.0005" in grouped
    assert paired == "GN paper Figure 8, laptop version: gn vs bn, L2 0.0005 · study · fashion_mnist · small_cnn · bs 8"


def test_every_figure_linked_is_on_disk_with_the_lambda_figures_of_two_groups(tmp_path, figure_files):
    root = tmp_path / "runs"
    for lr in (0.1, 0.01):
        for bs in (8, 32):
            write_run(root, "gn_plus_parallel", bs, 0, "completed", 0.8, lr=lr)
    out = tmp_path / "report"
    main(["report", str(root), "--out", str(out)])
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (out / "report.md").read_text())
    assert sum(name.startswith("lambda_") for name in linked) == 2
    assert sorted(p.name for p in out.glob("*.png")) == sorted(linked)  # none removed as stale, none left over
