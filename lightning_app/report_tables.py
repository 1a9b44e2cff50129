"""Accuracy tables in the layout of "Understanding and Improving Group Normalization", Tables 2–4:
rows = batch size, columns = norm, cells = accuracy in %, then a Mean and a Variance row over the batch
sizes (the paper's Variance is the sample variance: its Table 2 BN column 95.17, 95.38, 95.31, 94.56,
94.19 gives 0.27 with n − 1, 0.22 with n). A cell is mean ± sample std over seeds where there are
several. A configuration whose every seed exploded shows "–" and is left out of Mean and Variance, as
the paper does; one where only some seeds exploded is marked † and averages the rest.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass

from lightning_app.runs import RunRecord
from models.norms import norm_names

DASH = "–"


@dataclass(frozen=True)
class Cell:
    values: tuple[float, ...]  # accuracy (%) of every finished, non-exploded seed
    exploded: int  # seeds that exploded

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


@dataclass(frozen=True)
class AccuracyTable:
    batch_sizes: list[int]
    norms: list[str]
    cells: dict[tuple[int, str], Cell]

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
    """Norms in the registry's order (none, bn, gn, ...), unknown names after them."""
    known = norm_names()
    return sorted(set(names), key=lambda n: (known.index(n) if n in known else len(known), n))


def accuracy_table(runs: list[RunRecord], metric: str) -> AccuracyTable:
    """The table of runs that differ only in norm, batch size and seed (finished runs only)."""
    values: dict[tuple[int, str], list[float]] = {}
    exploded: dict[tuple[int, str], int] = {}
    for run in runs:
        key = (run.axis("batch_size"), run.axis("norm"))
        if run.status == "exploded":
            exploded[key] = exploded.get(key, 0) + 1
        elif run.status == "completed" and run.accuracy(metric) is not None:
            values.setdefault(key, []).append(100.0 * run.accuracy(metric))
    keys = set(values) | set(exploded)
    cells = {key: Cell(tuple(values.get(key, [])), exploded.get(key, 0)) for key in keys}
    return AccuracyTable(sorted({bs for bs, _ in keys}), ordered_norms(n for _, n in keys), cells)


def _number(value: float | None) -> str:
    return DASH if value is None else f"{value:.2f}"


def cell_text(cell: Cell | None) -> str:
    if cell is None:
        return ""
    if cell.mean is None:
        return DASH  # every seed exploded
    text = _number(cell.mean) if cell.std is None else f"{cell.mean:.2f} ± {cell.std:.2f}"
    return text + (" †" if cell.exploded else "")


def table_markdown(table: AccuracyTable) -> str:
    lines = ["| Batch size | " + " | ".join(table.norms) + " |", "|---|" + "---|" * len(table.norms)]
    for bs in table.batch_sizes:
        lines.append(f"| {bs} | " + " | ".join(cell_text(table.cells.get((bs, n))) for n in table.norms) + " |")
    lines.append("| Mean | " + " | ".join(_number(table.mean(n)) for n in table.norms) + " |")
    lines.append("| Variance | " + " | ".join(_number(table.variance(n)) for n in table.norms) + " |")
    seeds = sorted({len(c.values) + c.exploded for c in table.cells.values()})
    notes = [f"Seeds per cell: {', '.join(map(str, seeds))}; several seeds: mean ± sample std."]
    if any(c.mean is None for c in table.cells.values()):
        notes.append(f"{DASH}: training exploded (every seed); left out of Mean and Variance.")
    for (bs, norm), cell in sorted(table.cells.items()):
        if cell.exploded and cell.mean is not None:
            notes.append(f"†: batch size {bs}, {norm}: {cell.exploded} of {cell.exploded + len(cell.values)} "
                         "seeds exploded; the others are averaged.")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {note}" for note in notes) + "\n"
