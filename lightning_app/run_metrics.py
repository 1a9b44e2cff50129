"""`metrics.csv` that survives kills and resumes.

Lightning's CSV logger deletes an existing `metrics.csv` when it starts (so a resumed run would lose
every row of its first segment), keeps rows in memory for 100 steps (a kill loses them) and rewrites
the file in place when a new column appears (a kill truncates it). `RunMetricsLogger` instead:
- writes each logged row at once (one small append per logged step, every `log_every_n_steps`);
- on resume keeps the previous segment's rows up to the step the resumed run starts logging at
  (later rows came after the checkpoint and are logged again), and drops a row a kill cut short;
- rewrites the file (new column, trimming on resume), and `hparams.yaml`, through a temporary file
  and a rename; a Ctrl-C during a save takes effect once the header and the rows agree.
"""
from __future__ import annotations

import csv
import io
import os

import torch
from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.logger import rank_zero_experiment
from pytorch_lightning.utilities import rank_zero_only

from callbacks.run_files import atomic_write_text
from lightning_app.run.interrupt import signals_deferred
from lightning_app.run.metrics_rows import read_previous_rows
from lightning_app.run.paths import HPARAMS_FILE, METRICS_FILE


class MetricsFile:
    """`metrics.csv` and `hparams.yaml` of one directory: the writer behind `RunMetricsLogger`.

    Rows are kept from `log_metrics` to `save` (which the logger calls after every row). The columns
    are the sorted union of every key logged, `step` included, as Lightning's CSV logger writes them."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.metrics_file_path = os.path.join(log_dir, METRICS_FILE)
        self.metrics: list[dict] = []  # rows logged since the last save
        self.metrics_keys: list[str] = []
        self.hparams: dict = {}
        self._previous_rows: list[dict] | None = None  # an earlier segment's rows, until the first save
        if os.path.isfile(self.metrics_file_path):
            self._previous_rows, fieldnames = read_previous_rows(self.metrics_file_path)
            self.metrics_keys = sorted(fieldnames)
        os.makedirs(log_dir, exist_ok=True)

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        row = {key: value.item() if isinstance(value, torch.Tensor) else value for key, value in metrics.items()}
        row["step"] = len(self.metrics) if step is None else step
        self.metrics.append(row)

    def save(self) -> None:
        if not self.metrics:
            return
        # A new column updates the columns, then rewrites the file under the new header: a Ctrl-C between
        # the two left rows longer than the header, appended by the finalize after every stop.
        with signals_deferred():
            new_keys = set().union(*self.metrics) - set(self.metrics_keys)
            self.metrics_keys = sorted({*self.metrics_keys, *new_keys})
            exists = os.path.isfile(self.metrics_file_path)
            if self._previous_rows is not None:
                first_step = min(row["step"] for row in self.metrics)
                self._write_all([row for row in self._previous_rows if float(row["step"]) < first_step])
                self._previous_rows = None
            elif new_keys and exists:
                with open(self.metrics_file_path, newline="") as file:
                    self._write_all(list(csv.DictReader(file)))
            with open(self.metrics_file_path, "a" if exists else "w", newline="") as file:
                writer = csv.DictWriter(file, fieldnames=self.metrics_keys)
                if not exists:
                    writer.writeheader()
                writer.writerows(self.metrics)
            self.metrics = []

    def log_hparams(self, params: dict) -> None:  # hparams.yaml, rewritten at every (re)start: atomically too
        self.hparams.update(params)
        path = os.path.join(self.log_dir, HPARAMS_FILE)
        save_hparams_to_yaml(f"{path}.tmp", self.hparams)
        os.replace(f"{path}.tmp", path)

    def _write_all(self, rows: list[dict]) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_file_path, buffer.getvalue())


class RunMetricsLogger(CSVLogger):
    """A `CSVLogger` (same files, same layout) whose `metrics.csv` survives kills and resumes: its writer
    is `MetricsFile` instead of Lightning's, which deletes an existing file when it starts."""

    def __init__(self, *args, flush_logs_every_n_steps: int = 1, **kwargs):
        super().__init__(*args, flush_logs_every_n_steps=flush_logs_every_n_steps, **kwargs)
        self._writer: MetricsFile | None = None

    @property
    @rank_zero_experiment
    def experiment(self) -> MetricsFile:
        if self._writer is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._writer = MetricsFile(self.log_dir)
        return self._writer

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._writer is not None:
            self.save()
