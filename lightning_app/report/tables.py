"""Accuracy tables in the layout of "Understanding and Improving Group Normalization", Tables 2–4:
rows = batch size, columns = norm, cells = accuracy in %, then a Mean and a Variance row over the batch
sizes (the paper's Variance is the sample variance: its Table 2 BN column 95.17, 95.38, 95.31, 94.56,
94.19 gives 0.27 with n − 1, 0.22 with n). Rows are in numeric order. A cell is mean ± sample std over
seeds where there are several. A configuration whose every seed exploded shows "–" and is left out of
Mean and Variance, as the paper does; one where only some seeds exploded is marked † and averages the
rest. A finished run without a finite value (NaN, or no training step taken) is never a number: "n/a"
when no seed has one, ‡ when only some lack it. A table without a single value is not drawn.
The same layout serves the final σ(λ) of the GNPlus layers (rows batch size, columns layer).
"""
from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

from lightning_app.report.runs import RunRecord, numeric_key
from models.norm_names import NORM_NAMES

DASH = "–"
NO_VALUE = "n/a"


@dataclass(frozen=True)
class Cell:
    values: tuple[float, ...]  # the value of every completed seed that has a finite one
    exploded: int = 0  # seeds that exploded
    invalid: int = 0  # completed seeds without a finite value (NaN, or untrained)

    @property
    def seeds(self) -> int:
        return len(self.values) + self.exploded + self.invalid

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


@dataclass(frozen=True)
class AccuracyTable:
    batch_sizes: list[int]
    norms: list[str]  # the columns: norms, or GNPlus layers in the σ(λ) table
    cells: dict[tuple[int, str], Cell]

    @property
    def empty(self) -> bool:
        return not any(cell.values for cell in self.cells.values())

    def column_means(self, norm: str) -> list[float]:
        cells = [self.cells.get((bs, norm)) for bs in self.batch_sizes]
        return [cell.mean for cell in cells if cell is not None and cell.mean is not None]

    def mean(self, norm: str) -> float | None:
        means = self.column_means(norm)
        return statistics.fmean(means) if means else None

    def variance(self, norm: str) -> float | None:
        means = self.column_means(norm)
        return statistics.variance(means) if len(means) > 1 else None


def ordered_norms(names) -> list[str]:
    """Norms in the registry's order (none, bn, gn, ...), unknown names (or None: no norm key) after them."""
    known = list(NORM_NAMES)
    return sorted(set(names), key=lambda n: (known.index(n) if n in known else len(known), str(n)))


def accuracy_table(runs: list[RunRecord], metric: str) -> AccuracyTable:
    """The table of runs that differ only in norm, batch size and seed (finished runs only)."""
    values: dict[tuple[int, str], list[float]] = defaultdict(list)
    exploded: Counter = Counter()
    invalid: Counter = Counter()
    for run in runs:
        key = (run.axis("batch_size"), run.axis("norm"))
        if run.status == "exploded":
            exploded[key] += 1
        elif run.status == "completed":
            if run.accuracy(metric) is None:
                invalid[key] += 1
            else:
                values[key].append(100.0 * run.accuracy(metric))
    keys = set(values) | set(exploded) | set(invalid)
    cells = {key: Cell(tuple(values.get(key, [])), exploded[key], invalid[key]) for key in keys}
    return AccuracyTable(_numeric_sorted({bs for bs, _ in keys}), ordered_norms(n for _, n in keys), cells)


def final_lambda_tables(runs: list[RunRecord]) -> dict[str, AccuracyTable]:
    """Per GNPlus norm: the final σ(λ) of each layer (summary.json `lambdas`), rows batch size, columns
    layer, over the completed runs."""
    tables = {}
    for norm in ordered_norms(run.axis("norm") for run in runs):
        values: dict[tuple[int, str], list[float]] = defaultdict(list)
        for run in runs:
            lambdas = run.summary.get("lambdas")
            if run.axis("norm") != norm or run.status != "completed" or not isinstance(lambdas, dict):
                continue
            for layer, value in lambdas.items():
                if isinstance(value, (int, float)) and math.isfinite(value):
                    values[(run.axis("batch_size"), layer.removeprefix("net."))].append(float(value))
        if values:
            layers = sorted({layer for _, layer in values}, key=layer_order)
            cells = {key: Cell(tuple(v)) for key, v in values.items()}
            tables[norm] = AccuracyTable(_numeric_sorted({bs for bs, _ in values}), layers, cells)
    return tables


def layer_order(path: str) -> tuple:
    """Module paths in network order: `features.9` before `features.12`."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in path.split("."))


def _numeric_sorted(values) -> list:
    return sorted(values, key=numeric_key)


def _number(value: float | None, digits: int) -> str:
    return DASH if value is None else f"{value:.{digits}f}"


def cell_text(cell: Cell | None, digits: int) -> str:
    if cell is None:
        return ""
    if cell.mean is None:
        return DASH if cell.exploded else NO_VALUE
    text = _number(cell.mean, digits) if cell.std is None else f"{cell.mean:.{digits}f} ± {cell.std:.{digits}f}"
    return text + (" †" if cell.exploded else "") + (" ‡" if cell.invalid else "")


def table_markdown(table: AccuracyTable, corner: str = "Batch size", summary_rows: bool = True,
                   digits: int = 2) -> str:
    """The table and its notes; `summary_rows`: the paper's Mean and Variance over batch sizes."""
    lines = [f"| {corner} | " + " | ".join(table.norms) + " |", "|---|" + "---|" * len(table.norms)]
    for bs in table.batch_sizes:
        lines.append(f"| {bs} | " + " | ".join(cell_text(table.cells.get((bs, n)), digits) for n in table.norms)
                     + " |")
    if summary_rows:
        lines.append("| Mean | " + " | ".join(_number(table.mean(n), digits) for n in table.norms) + " |")
        lines.append("| Variance | " + " | ".join(_number(table.variance(n), digits) for n in table.norms) + " |")
    seeds = sorted({c.seeds for c in table.cells.values()})
    notes = [f"Seeds per cell: {', '.join(map(str, seeds))}; several seeds: mean ± sample std."]
    if any(c.mean is None and c.exploded for c in table.cells.values()):
        notes.append(f"{DASH}: training exploded (every seed); left out of Mean and Variance.")
    if any(c.mean is None and not c.exploded for c in table.cells.values()):
        notes.append(f"{NO_VALUE}: no seed has a finite value (NaN, or the run took no training step); left out "
                     "of Mean and Variance.")
    for (bs, norm), cell in sorted(table.cells.items(), key=lambda item: (numeric_key(item[0][0]),
                                                                          table.norms.index(item[0][1]))):
        if cell.mean is None:
            continue
        if cell.exploded:
            notes.append(f"†: batch size {bs}, {norm}: {cell.exploded} of {cell.seeds} seeds exploded; the others "
                         "are averaged.")
        if cell.invalid:
            notes.append(f"‡: batch size {bs}, {norm}: {cell.invalid} of {cell.seeds} seeds have no finite value "
                         "(NaN, or no training step); the others are averaged.")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"
