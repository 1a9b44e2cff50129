"""The activation statistics' records read back (`activation_histograms.jsonl`), apart from the callback
(`activation_stats.py`, which writes them and imports torch and Lightning), so that `lightning report`
draws their figures without importing either.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Sequence

import numpy as np

HISTOGRAM_FILE = "activation_histograms.jsonl"
WHERE = ("before", "after")


def bin_edges(bins: int, value_range: Sequence[float]) -> np.ndarray:
    """The `bins + 1` edges of a record's histogram (numpy.histogram's for the same bins and range)."""
    return np.linspace(float(value_range[0]), float(value_range[1]), bins + 1)


def read_histograms(path: str | os.PathLike) -> list[dict]:
    """The records of an `activation_histograms.jsonl`, the last one per (step, layer, channel, where)
    (a resumed run measures the steps after its checkpoint again), in the order they were last written;
    a last line without its newline was cut short by a kill and is left out."""
    records: dict[tuple, dict] = {}
    for record in complete_records(path)[0]:
        key = (record["step"], record["layer"], record["channel"], record["where"])
        records.pop(key, None)
        records[key] = record
    return list(records.values())


def complete_records(path: str | os.PathLike) -> tuple[list[dict], bool]:
    """Every whole line's record, and whether a last line without its newline (a kill's) was left out."""
    text = Path(path).read_text()
    whole = text[: text.rfind("\n") + 1]
    records = []
    for number, line in enumerate(whole.splitlines(), 1):
        try:
            record = json.loads(line)
            (record["step"], record["layer"], record["channel"], record["where"])
        except (json.JSONDecodeError, TypeError, KeyError) as error:
            raise ValueError(f"{path}, line {number}, is not a histogram record ({type(error).__name__}: "
                             f"{error}); delete the file to start its record over") from None
        records.append(record)
    return records, len(whole) < len(text)
