"""Reading a run's `metrics.csv` back, as the resume and the report do (`run_metrics.py` writes it).

Apart from the logger, which builds on Lightning, so that `lightning report` reads runs without
importing Lightning or torch.
"""
from __future__ import annotations

import csv
import io
import os


def read_complete_rows(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """metrics.csv's rows and header, less a last row without its newline: rows are appended whole, so
    such a row was cut by a kill. Shared by the resume (below) and the report (report/runs.py)."""
    with open(path, newline="") as file:
        text = file.read()
    reader = csv.DictReader(io.StringIO(text[: text.rfind("\n") + 1]))
    return list(reader), list(reader.fieldnames or [])


def read_previous_rows(path: str | os.PathLike) -> tuple[list[dict], list[str]]:
    """The complete rows and the columns of an earlier segment's metrics.csv; a file this logger did
    not write (run_metrics.py) is a ValueError naming it."""
    try:
        rows, fieldnames = read_complete_rows(path)
        # A row longer than the header (DictReader files its extra values under None) was appended after a
        # Ctrl-C cut a header rewrite short, before `save` deferred signals: which column holds which value
        # is lost, so it is dropped. It is the stop's own row, normally past the last checkpoint: the
        # resumed run logs that step again.
        rows = [row for row in rows if None not in row]
        if rows and "step" not in fieldnames:
            raise ValueError("no 'step' column")
        for row in rows:
            float(row["step"])
    except (UnicodeDecodeError, csv.Error, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a metrics file of a run ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:120]}); delete it or the run directory to start over") from None
    return rows, fieldnames
