"""`lightning report RUNS_DIR [--out DIR] [--metric final_val_acc|best_val_acc|test_acc]`

Reads every finished run directory under RUNS_DIR (config.yaml, summary.json, metrics.csv; never W&B,
so it works offline) and writes DIR/report.md (default RUNS_DIR/report) with PNG figures beside it, all
atomically: accuracy tables in the GN paper's layout with accuracy against batch size, final σ(λ) per
layer (table and figure) and λ trajectories (tables.py, batch_figures.py), training
curves against images seen, landscape bands and the learning-rate envelope (figures.py), and where runs
measured their norm layers the course report's histograms, channel means and gradient norms
(activation_figures.py), and under output noise every seed's gradient norm.
Runs are grouped by what they share (groups.py): a table, its curves and λ figures hold runs that
differ only in norm, batch size, seed and the values tied to the batch size; a landscape figure and the
activation figures runs that differ only in norm and seed; an envelope runs that differ only in norm, LR
and seed. The same
science under two run names counts once; unreadable run files are named and skipped.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Literal

from jsonargparse import ArgumentParser

from callbacks.run_files import atomic_write_text
from lightning_app.bad_input import parse_command_line
from lightning_app.report.activation_figures import (has_activation_statistics, plot_activation_histograms,
                                                     plot_channel_means, plot_grad_norms)
from lightning_app.report.batch_figures import (plot_accuracy_vs_batch, plot_final_lambda_vs_batch,
                                                plot_lambda_trajectories)
from lightning_app.report.figures import plot_landscape, plot_lr_envelope, plot_training_curves, study_order
from lightning_app.report.groups import Group, deduplicate, grouped, unique_titles
from lightning_app.report.landscape_claims import (gn_beats_none_claim, landscape_claims, table1, table1_claims,
                                                   table1_markdown)
from lightning_app.report.lr_bands import plot_pair, studies
from lightning_app.report.claims import claims_markdown
from lightning_app.report.course_claims import course_claims
from lightning_app.report.noise_claims import candidate_claims, noise_claims
from lightning_app.report.run_select import value
from lightning_app.report.runs import RunRecord, load_runs
from lightning_app.report.tables import accuracy_table, final_lambda_tables, ordered_norms, table_markdown
from lightning_app.run.paths import check_directory_target
from lightning_app.run.status import FINISHED, KILLED, STATUSES

REPORT_FILE = "report.md"
REPORT_HEADING = "# normlab report"  # its first line: how a later report knows the directory is a report's
# Every figure name write_report gives (`<kind>_<group index>.png`).
FIGURE_NAME = re.compile(r"(accuracy_vs_batch|final_lambda|lambda|curves|landscape|lr_envelope|paper_landscape"
                         r"|activation_hist|channel_means|grad_norm|noise_grad_norm)_\d{2,}\.png")
# The figures drawn per group: (file name, caption, drawing); the λ figures per GN-paper table, the course
# report's three views per group with activation statistics.
LAMBDA_FIGURES = (("final_lambda", None, plot_final_lambda_vs_batch), ("lambda", None, plot_lambda_trajectories))
ACTIVATION_FIGURES = (("activation_hist", "Channel histograms over training", plot_activation_histograms),
                      ("channel_means", "Channel means over training", plot_channel_means),
                      ("grad_norm", "Gradient L2 norm per step", plot_grad_norms))
METRICS = {"final_val_acc": "final validation accuracy", "best_val_acc": "best validation accuracy",
           "test_acc": "test accuracy"}


def figure_section(heading: str, explanation: str, figures: list[tuple[str, Path]], out: Path) -> list[str]:
    if not figures:
        return []
    lines = [f"## {heading}", "", explanation, ""]
    for title, path in figures:
        lines += [f"**{title}**", "", f"![{title}]({path.relative_to(out).as_posix()})", ""]
    return lines


def runs_table(runs: list[RunRecord]) -> list[str]:
    def pct(value):
        return "" if value is None else f"{100 * value:.2f}"

    lines = ["| run | status | norm | batch size | lr | seed | best val acc | final val acc | test acc | epochs |"
             " wall (s) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for run in sorted(runs, key=lambda r: (r.experiment, study_order(r))):
        s = run.summary
        lines.append(f"| `{run.experiment}/{run.name}` | {run.status} | {run.axis('norm')} | {run.axis('batch_size')} |"
                     f" {run.axis('lr')} | {run.axis('seed')} | {pct(run.accuracy('best_val_acc'))} |"
                     f" {pct(run.accuracy('final_val_acc'))} | {pct(run.accuracy('test_acc'))} | {s.get('epochs', '')} |"
                     f" {s.get('wall_seconds') or 0:.0f} |")
    return lines


def write_report(runs: list[RunRecord], out: Path, metric: str = "final_val_acc", *, source: str,
                 skipped: list[str] = ()) -> tuple[Path, list[Path]]:
    """Write report.md and its figures into `out` (created with its parents); `source` names where the runs
    were read, in the first line. Returns the report and the figures written."""
    out.mkdir(parents=True, exist_ok=True)
    killed = sum(r.status == KILLED for r in runs)  # named only when there are some: a state to look into
    counts = ", ".join(f"{sum(r.status == s for r in runs)} {s}" for s in STATUSES)
    counts += f", {killed} {KILLED}" if killed else ""
    plural = "s" * (len(runs) != 1)
    lines = [REPORT_HEADING, "", f"{len(runs)} run{plural} under `{source}`: {counts}. Tables and figures use the "
             "finished runs (completed or exploded); every run is listed under Runs.", ""]
    listed = runs
    unique, duplicates = deduplicate(runs)
    runs = [run for run in unique if run.status in FINISHED]
    if skipped or duplicates:
        lines += ["## Run files left out", "", *(f"- {note}" for note in [*skipped, *duplicates]), ""]

    table_groups = grouped(runs, "norm", "batch_size", "seed")
    table_titles = unique_titles(table_groups, "lr", "weight_decay")
    accuracy_lines, figures = _accuracy_section(table_groups, table_titles, metric, out)
    lambda_lines, lambda_figures = _lambda_section(table_groups, table_titles, out)
    lines += accuracy_lines + lambda_lines
    figures += lambda_figures

    curves = [(t, plot_training_curves(g.runs, out / f"curves_{i:02d}.png", t))
              for i, (t, g) in enumerate(zip(table_titles, table_groups))]
    lines += figure_section("Training curves", "Against training images seen (optimizer step × images per step), so "
                            "batch sizes compare at equal data; one row per batch size, one colour per norm, mean ± "
                            "std over seeds; validation points at the step they were measured; the training loss "
                            "(one batch per logged point) averaged in bins.", [c for c in curves if c[1]], out)

    landscape_groups = grouped(runs, "norm", "seed")
    landscape_titles = unique_titles(landscape_groups, "batch_size", "lr", "weight_decay")
    landscapes = [(t, plot_landscape(g.runs, out / f"landscape_{i:02d}.png", t))
                  for i, (t, g) in enumerate(zip(landscape_titles, landscape_groups))]
    lines += figure_section("Landscape", "Santurkar et al. (2018), Fig. 4: at each probed step, the band between "
                            "the lowest and highest loss (and gradient predictiveness) over the probe's step "
                            "sizes, and the effective β-smoothness; one colour per norm, probes and seeds averaged "
                            "in bins of images seen.", [c for c in landscapes if c[1]], out)

    envelope_groups = grouped(runs, "norm", "lr", "seed")
    envelopes = [(t, plot_lr_envelope(g.runs, out / f"lr_envelope_{i:02d}.png", t))
                 for i, (t, g) in enumerate(zip(unique_titles(envelope_groups, "batch_size", "weight_decay"),
                                                envelope_groups))]
    lines += figure_section("Learning-rate envelope", "GN paper, Figures 6–8: for runs that differ only in the "
                            "learning rate, the band between the lowest and the highest training loss across "
                            "them at each step; a narrow band means training does not depend much on the LR.",
                            [c for c in envelopes if c[1]], out)

    activation_lines, activation_figures = _activation_section(landscape_groups, landscape_titles, out)
    noise_lines, noise_figures = _output_noise_section(landscape_groups, landscape_titles, out)
    lines += activation_lines + noise_lines
    paper_lines, paper_figures = _paper_landscape_section(runs, out)
    lines += paper_lines + _claims_section(runs)
    lines += ["## Runs", "", *runs_table(listed), ""]
    report = out / REPORT_FILE
    atomic_write_text(report, "\n".join(lines))
    written = [p for _, p in figures + curves + landscapes + envelopes + activation_figures + noise_figures
                                     + paper_figures
               if p is not None]
    _remove_stale_figures(out, written)
    return report, written


def _accuracy_section(groups: list[Group], titles: list[str], metric: str,
                      out: Path) -> tuple[list[str], list[tuple[str, Path | None]]]:
    """One table per group in the paper's layout, its tied rule, and accuracy against batch size."""
    lines = [f"## Accuracy ({METRICS[metric]}, %)", "",
             "Layout of the GN paper's Tables 2–4: rows batch size, columns norm; Mean and Variance over batch "
             "sizes (sample variance, as the paper). A table holds runs that differ only in norm, seed and batch "
             "size, and in the values tied to the batch size, which it names.", ""]
    figures = []
    for i, (title, group) in enumerate(zip(titles, groups)):
        table = accuracy_table(group.runs, metric)
        if table.empty:
            lines += [f"### {title}", "", _no_table_sentence(group, metric), ""]
            continue
        lines += [f"### {title}", "", *_tied_lines(group), table_markdown(table), ""]
        if len(table.batch_sizes) > 1:
            path = plot_accuracy_vs_batch(table, out / f"accuracy_vs_batch_{i:02d}.png", title,
                                          f"{METRICS[metric]} (%)")
            lines += _figure_lines(title, path, out)
            figures.append((title, path))
    return lines, figures


def _lambda_section(groups: list[Group], titles: list[str], out: Path) -> tuple[list[str], list[tuple[str, Path | None]]]:
    """Per group with GNPlus runs: the final σ(λ) tables, σ(λ) against batch size and the trajectories."""
    sections, figures = [], []
    for i, (title, group) in enumerate(zip(titles, groups)):
        section = [line for norm, table in final_lambda_tables(group.runs).items()
                   for line in (f"**{norm}**", "", table_markdown(table, "Batch size \\ layer", summary_rows=False,
                                                                   digits=3), "")]
        if section:
            section[:0] = ["Final σ(λ) (weight on the GN output) per GNPlus layer, input → output (summary.json "
                           "`lambdas`; completed runs).", ""]
        drawn_lines, drawn = _group_figures(group.runs, i, title, out, LAMBDA_FIGURES)
        sections.append((title, section + drawn_lines))
        figures += drawn
    return _group_sections("σ(λ) of the GNPlus layers", "GN paper §4: s = σ(λ) weighs the GN part, 1 − s the BN "
                           "part; λ is logged by `callbacks.lambda_tracker.LambdaTracker`. Every λ panel shares the y "
                           "axis [0, 1].", sections), figures


def _activation_section(groups: list[Group], titles: list[str],
                        out: Path) -> tuple[list[str], list[tuple[str, Path | None]]]:
    """Per group of runs differing only in norm and seed, where some measured their norm layers (the
    activation statistics): the course report's three views. Groups without them get nothing, not even
    the gradient norm every run logs, so a report of runs without the statistics is unchanged."""
    sections, figures = [], []
    for i, (title, group) in enumerate(zip(titles, groups)):
        if any(map(has_activation_statistics, group.runs)):
            section, drawn = _group_figures(group.runs, i, title, out, ACTIVATION_FIGURES)
            sections.append((title, section))
            figures += drawn
    return _group_sections("Activation statistics", "The course report's TensorBoard views (Sridhar, Azim & "
                           "Talegaonkar 2018, §III), from runs with `configs/presets/activations.yaml`; per norm its "
                           "first seed and the deepest measured layer. Histograms: one channel's values before and "
                           "after the norm as a density, the first measured step at the back (top), the last at the "
                           "front (bottom). Channel means: each chosen channel's mean over (N, H, W) before the norm, "
                           "± one standard deviation, and for grouped norms the group coherence η² (1: the channels "
                           "of a group share the statistic). Gradient L2 norm: `grad/norm` of the norms overlaid, "
                           "log axis.", sections), figures


def _output_noise_section(groups: list[Group], titles: list[str],
                          out: Path) -> tuple[list[str], list[tuple[str, Path | None]]]:
    """Per group of runs with Gaussian noise on the norms' outputs (GN paper, §3.2.1, Figures 5 and 11):
    the gradient norm of every norm and seed, the paper's evidence of vanishing gradients, since one
    seed's collapse is what a first-seed figure could miss."""
    def plot_every_seed(runs, path, title):
        return plot_grad_norms(runs, path, title, every_seed=True)

    sections, figures = [], []
    for i, (title, group) in enumerate(zip(titles, groups)):
        if any((value(run, "noise_std") or 0) > 0 for run in group.runs):
            section, drawn = _group_figures(group.runs, i, title, out, (("noise_grad_norm", None, plot_every_seed),))
            sections.append((title, section))
            figures += drawn
    return _group_sections("Gradient norm under output noise", "GN paper, Figure 5: with noise on every norm "
                           "layer's output, GN's gradients vanish while BN's do not. `grad/norm` (the global L2 norm "
                           "of the gradient) of every norm and seed, one line style per seed, log axis; the explosion "
                           "detector's vanish check fires below 1e-8.", sections), figures


def _group_sections(heading: str, introduction: str, sections: list[tuple[str, list[str]]]) -> list[str]:
    """`## heading`, its introduction and a `### title` per group with lines; nothing when no group has any."""
    lines = [line for title, section in sections if section for line in (f"### {title}", "", *section)]
    return [f"## {heading}", "", introduction, "", *lines] if lines else []


def _paper_landscape_section(runs: list[RunRecord], out: Path) -> tuple[list[str], list[tuple[str, Path | None]]]:
    """Per landscape study (runs differing only in norm, weight decay, LR and seed): the GN paper's paired
    figures (Figures 6–10), its Table 1, and every claim's number per seed with a verdict."""
    lines, figures = [], []
    for study in studies(runs):
        title = unique_titles(grouped(study.runs, "norm", "weight_decay", "lr", "seed"), "batch_size")[0]
        lines += [f"### {title}", "", f"{len(study.runs)} runs with landscape probes, seeds "
                  f"{', '.join(map(str, study.seeds))}.", ""]
        for pair, l2 in study.pairs():
            path = plot_pair(study, pair, l2, out / f"paper_landscape_{len(figures):02d}.png", title)
            figures.append((pair.label, path))
            lines += [f"**{pair.label}{f' {l2:g}' if pair.regularized else ''}**", "", *_figure_lines(pair.label, path, out)]
        claims = landscape_claims(study) + landscape_claims(study, "paper_code")
        table = table1(study)
        if table is not None:
            lines += [f"**Table 1**: best validation accuracy (%) at lr {table.lr:g}, mean ± std over seeds; drop = "
                      "without L2 − with L2 (points).", "", table1_markdown(table, ordered_norms(n for n, _ in study.arms)),
                      ""]
            claims += table1_claims(table)
        claims += gn_beats_none_claim(study)
        if claims:
            lines += ["**Claims**: the number per seed (✗ where its condition fails there) and the verdict over "
                      "seeds; each loss claim on the probe's bands and on the measure of the paper's code (the training loss "
                      "across the LR runs). Definitions: `lightning_app/report/landscape_claims.py`.", "",
                      claims_markdown(claims), ""]
    if lines:
        lines[:0] = ["## The GN paper's landscape analysis (Figures 6–10, Table 1)", "",
                     "Each band: at each probed step, the lowest `landscape/*_min` and the highest `landscape/*_max` "
                     "over the arm's learning rates (the probe's min–max over step sizes η, Santurkar et al. 2018, "
                     "then over the five LRs, as the GN paper's appendix B.2); filled for the first seed, dashed "
                     "edges for the others.", ""]
    return lines, figures


def _claims_section(runs: list[RunRecord]) -> list[str]:
    """Per experiment, the claims of the course report and of the GN paper's noise and A.5 experiments
    whose runs it holds (each claim set picks the configurations it compares and skips what is missing)."""
    lines = []
    for experiment in sorted({run.experiment for run in runs}):
        members = [run for run in runs if run.experiment == experiment]
        claims = course_claims(members) + noise_claims(members) + candidate_claims(members)
        if claims:
            lines += [f"### {experiment}", "", claims_markdown(claims), ""]
    if lines:
        lines[:0] = ["## Claims of the papers", "", "The number per seed (✗ where its condition fails there) and the "
                     "verdict over seeds. Definitions: `lightning_app/report/course_claims.py` (course report) and "
                     "`noise_claims.py` (GN paper, output noise and appendix A.5).", ""]
    return lines


def _group_figures(runs: list[RunRecord], index: int, title: str, out: Path,
                   plots: tuple) -> tuple[list[str], list[tuple[str, Path]]]:
    """Each (file name, caption or None, drawing) of `plots` drawn from `runs` as `<name>_<index>.png`: the
    report lines linking those that were drawn (under their caption), and them."""
    lines, drawn = [], []
    for name, caption, plot in plots:
        path = plot(runs, out / f"{name}_{index:02d}.png", title)
        if path is not None:
            lines += [f"**{caption}**", "", *_figure_lines(f"{caption}: {title}", path, out)] if caption else \
                _figure_lines(title, path, out)
            drawn.append((title, path))
    return lines, drawn


def _tied_lines(group: Group) -> list[str]:
    rules = group.rules()
    return [f"Tied to the batch size: {'; '.join(rules)}.", ""] if rules else []


def _no_table_sentence(group: Group, metric: str) -> str:
    exploded = sum(run.status == "exploded" for run in group.runs)
    return (f"No table: none of its {len(group.runs)} finished runs has a finite {METRICS[metric]} ({exploded} "
            f"exploded, {len(group.runs) - exploded} completed without a finite value: NaN, missing, or no training "
            "step).")


def _figure_lines(title: str, path: Path | None, out: Path) -> list[str]:
    return [] if path is None else [f"![{title}]({path.relative_to(out).as_posix()})", ""]


def check_out_dir(out: Path) -> None:
    """The report writes into a new or empty directory, or over a previous report, and nowhere else: an
    `--out` naming a folder of other files (a run directory, a paper's figures) would have its files of
    the same names replaced and, where they look like figures of an earlier report, deleted."""
    check_directory_target(out, "the report", "move it away or set --out to write elsewhere",
                           "set --out to a directory you can write")
    if out.is_dir() and any(out.iterdir()) and not _holds_a_report(out):
        raise ValueError(f"--out {out} holds other files and no normlab {REPORT_FILE}; set --out to a new or empty "
                         "directory, or to a previous report's")


def _holds_a_report(out: Path) -> bool:
    try:
        with open(out / REPORT_FILE, encoding="utf-8") as f:
            return f.readline().rstrip("\n") == REPORT_HEADING
    except (OSError, UnicodeDecodeError):
        return False


def _remove_stale_figures(out: Path, written: list[Path]) -> None:
    """Figures a previous report wrote that this one did not (fewer groups, nothing left to draw): left in
    place they would sit beside report.md, unlinked, showing runs the report no longer describes."""
    for path in out.iterdir():
        if FIGURE_NAME.fullmatch(path.name) and path not in written:
            path.unlink()


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="lightning report", description=__doc__.split("\n\n")[1], exit_on_error=False)
    parser.add_argument("runs_dir", type=Path, help="a folder of run directories (searched recursively)")
    parser.add_argument("--out", type=Path | None, default=None,
                        help="where report.md and the PNGs go (default: RUNS_DIR/report)")
    parser.add_argument("--metric", type=Literal[tuple(METRICS)], default="final_val_acc",
                        help="the accuracy in the tables")
    return parser


def main(argv: list[str]) -> None:
    args = parse_command_line(build_parser(), argv)
    out = args.out or args.runs_dir / "report"
    check_out_dir(out)
    runs, skipped = load_runs(args.runs_dir)
    for note in skipped:
        print(f"normlab: {note}", file=sys.stderr)
    report, figures = write_report(runs, out, args.metric, source=str(args.runs_dir), skipped=skipped)
    print(f"normlab: report {report} ({len(runs)} runs, {len(figures)} figures)")
