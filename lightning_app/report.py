"""`lightning report RUNS_DIR [--out DIR] [--metric final_val_acc|best_val_acc|test_acc]`

Reads every finished run directory under RUNS_DIR (config.yaml, summary.json, metrics.csv; never W&B,
so it works offline) and writes DIR/report.md (default RUNS_DIR/report) with PNG figures beside it:
accuracy tables in the GN paper's layout (report_tables.py), λ trajectories, landscape bands, the
learning-rate envelope and training curves (report_figures.py). Runs are grouped by what they share:
a table holds runs that differ only in norm, batch size and seed; a landscape or training-curve figure
runs that differ only in norm and seed; an envelope runs that differ only in norm, LR and seed.
"""
from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from lightning_app.report_figures import (plot_lambda, plot_lambda_grid, plot_landscape, plot_lr_envelope,
                                          plot_training_curves, study_order)
from lightning_app.report_tables import accuracy_table, table_markdown
from lightning_app.run.status import FINISHED, STATUSES
from lightning_app.runs import RunRecord, load_runs

METRICS = {"final_val_acc": "final validation accuracy", "best_val_acc": "best validation accuracy",
           "test_acc": "test accuracy"}


def grouped(runs: list[RunRecord], *varying: str) -> list[list[RunRecord]]:
    groups: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        groups[run.context(*varying)].append(run)
    return list(groups.values())


def group_title(group: list[RunRecord], *fixed: str) -> str:
    """What a group's runs share, readably: experiment, data set, backbone and the fixed axes."""
    run = group[0]
    parts = [run.experiment, run.dataset, run.backbone]
    names = {"batch_size": "bs", "lr": "lr", "norm": "norm", "seed": "seed"}
    for axis in fixed:
        value = run.axis(axis)
        parts.append(f"{names[axis]} {value:g}" if isinstance(value, float) else f"{names[axis]} {value}")
    return " · ".join(str(p) for p in parts)


def unique_titles(groups: list[list[RunRecord]], *fixed: str) -> list[str]:
    """Titles of groups; where two read the same (they differ elsewhere), the context hash tells them apart."""
    titles = [group_title(g, *fixed) for g in groups]
    return [t if titles.count(t) == 1 else f"{t} · config {g[0].context().split(':')[1]}"
            for t, g in zip(titles, groups)]


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


def write_report(runs: list[RunRecord], out: Path, metric: str = "final_val_acc",
                 source: str = "") -> tuple[Path, list[Path]]:
    """Write report.md and its figures into `out`; returns the report and the figures written."""
    out.mkdir(parents=True, exist_ok=True)
    counts = ", ".join(f"{sum(r.status == s for r in runs)} {s}" for s in STATUSES)
    lines = ["# normlab report", "", f"{len(runs)} runs under `{source}`: {counts}. Tables and figures use the "
             "finished runs (completed or exploded); every run is listed under Runs.", ""]
    everything, runs = runs, [run for run in runs if run.status in FINISHED]

    lines += [f"## Accuracy ({METRICS[metric]}, %)", "",
              "Layout of the GN paper's Tables 2–4: rows batch size, columns norm; Mean and Variance over batch "
              "sizes (sample variance, as the paper).", ""]
    table_groups = grouped(runs, "norm", "batch_size", "seed")
    for title, group in zip(unique_titles(table_groups, "lr"), table_groups):
        lines += [f"### {title}", "", table_markdown(accuracy_table(group, metric)), ""]

    lambda_figures = [(f"{run.experiment}/{run.name}", plot_lambda(run, out / "lambda" / f"{run.name}.png"))
                      for run in sorted(runs, key=study_order)]
    by_experiment = defaultdict(list)
    for run in runs:
        by_experiment[run.experiment].append(run)
    grids = [(f"{experiment}: every run with GNPlus layers",
              plot_lambda_grid(group, out / f"lambda_grid_{experiment}.png"))
             for experiment, group in sorted(by_experiment.items())]
    lines += figure_section("λ trajectories", "σ(λ), the weight on the GN output, per GNPlus layer "
                            "(`lambda/<module path>`, logged by `callbacks.lambda_tracker.LambdaTracker`).",
                            [(t, p) for t, p in grids + lambda_figures if p is not None], out)

    curve_groups = grouped(runs, "norm", "seed")
    titles = unique_titles(curve_groups, "batch_size", "lr")
    landscapes = [(t, plot_landscape(g, out / f"landscape_{i:02d}.png", t))
                  for i, (t, g) in enumerate(zip(titles, curve_groups))]
    lines += figure_section("Landscape", "Santurkar et al. (2018), Fig. 4: at each probed step, the band between "
                            "the lowest and highest loss (and gradient predictiveness) over the probe's step "
                            "sizes, and the effective β-smoothness; one colour per norm, seeds overlaid.",
                            [(t, p) for t, p in landscapes if p is not None], out)

    envelope_groups = grouped(runs, "norm", "lr", "seed")
    envelopes = [(t, plot_lr_envelope(g, out / f"lr_envelope_{i:02d}.png", t))
                 for i, (t, g) in enumerate(zip(unique_titles(envelope_groups, "batch_size"), envelope_groups))]
    lines += figure_section("Learning-rate envelope", "GN paper, Figures 6–8: for runs that differ only in the "
                            "learning rate, the band between the lowest and the highest training loss across "
                            "them at each step; a narrow band means training does not depend much on the LR.",
                            [(t, p) for t, p in envelopes if p is not None], out)

    curves = [(t, plot_training_curves(g, out / f"curves_{i:02d}.png", t))
              for i, (t, g) in enumerate(zip(titles, curve_groups))]
    lines += figure_section("Training curves", "One colour per norm, one line per seed.",
                            [(t, p) for t, p in curves if p is not None], out)

    lines += ["## Runs", "", *runs_table(everything), ""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    figures = [p for _, p in grids + lambda_figures + landscapes + envelopes + curves if p is not None]
    return report, figures


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="lightning report", description=__doc__.split("\n\n")[1])
    parser.add_argument("runs_dir", type=Path, help="a folder of run directories (searched recursively)")
    parser.add_argument("--out", type=Path, default=None, help="where report.md and the PNGs go "
                        "(default: RUNS_DIR/report)")
    parser.add_argument("--metric", choices=list(METRICS), default="final_val_acc",
                        help="the accuracy in the tables (default: final_val_acc)")
    args = parser.parse_args(argv)
    runs = load_runs(args.runs_dir)
    out = args.out or args.runs_dir / "report"
    report, figures = write_report(runs, out, args.metric, source=str(args.runs_dir))
    print(f"normlab: report {report} ({len(runs)} runs, {len(figures)} figures)")
