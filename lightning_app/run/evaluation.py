"""Where `validate`, `test` and `predict` write: `<run>/eval/<subcommand>-<checkpoint>-<UTC time>/`.

An evaluation never touches the fit's record (`config.yaml`, `metrics.csv`, `summary.json`,
`checkpoints/`): it gets its own directory with `metrics.csv` (the CSV logger), `summary.json`
(subcommand, checkpoint, metrics) and for `predict` `predictions.csv` (index, predicted class, label).
The run is the one the checkpoint was saved in, else the one the config names. The summary is named
like the fit's but the directory holds no `config.yaml`, so `lightning report` never takes it for a run.
"""
from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from callbacks.run_files import atomic_write_text, write_json
from lightning_app.run.paths import EVAL_DIR, PREDICTIONS_FILE, SUMMARY_FILE, name_limit


def new_eval_dir(run_dir: Path, subcommand: str, checkpoint: str | None) -> Path:
    """A fresh directory for one evaluation (a suffix when two start within the same second)."""
    stem = Path(checkpoint).stem if checkpoint else "no_checkpoint"
    stamp = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}"
    room = name_limit(run_dir)[0] - len(f"{subcommand}--{stamp}-999".encode())  # a long checkpoint name is cut
    stem = stem.encode()[:max(room, 1)].decode(errors="ignore")
    base = run_dir / EVAL_DIR / f"{subcommand}-{stem}-{stamp}"
    for suffix in range(1000):
        path = base.with_name(base.name + (f"-{suffix}" if suffix else ""))
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            continue
    raise ValueError(f"cannot create an evaluation directory under {run_dir / EVAL_DIR}")


def write_eval_summary(eval_dir: Path, subcommand: str, checkpoint: str | None, metrics: dict[str, Any],
                       **fields) -> dict:
    numbers = {k: float(v) for k, v in metrics.items()}
    summary = {"subcommand": subcommand, "checkpoint": str(Path(checkpoint).resolve()) if checkpoint else None,
               "metrics": {k: (v if math.isfinite(v) else None) for k, v in numbers.items()},
               "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), **fields}
    write_json(eval_dir / SUMMARY_FILE, summary)
    return summary


def write_predictions(eval_dir: Path, batches: list[dict[str, torch.Tensor]]) -> int:
    """`predictions.csv` from predict_step's outputs (`prediction`, `label` per batch); the row count."""
    predictions = torch.cat([b["prediction"] for b in batches]).tolist() if batches else []
    labels = torch.cat([b["label"] for b in batches]).tolist() if batches else []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "prediction", "label"])
    writer.writerows((i, p, y) for i, (p, y) in enumerate(zip(predictions, labels)))
    atomic_write_text(eval_dir / PREDICTIONS_FILE, buffer.getvalue())
    return len(predictions)
