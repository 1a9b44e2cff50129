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

from pytorch_lightning.core.saving import save_hparams_to_yaml
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter
from pytorch_lightning.loggers.logger import rank_zero_experiment

from callbacks.run_files import atomic_write_text
from lightning_app.run.interrupt import signals_deferred
from lightning_app.run.metrics_rows import read_previous_rows


class _ResumableWriter(ExperimentWriter):
    def __init__(self, log_dir: str) -> None:
        self._previous_rows: list[dict] | None = None
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:  # the parent deletes metrics.csv here
        if os.path.isfile(self.metrics_file_path):
            self._previous_rows, fieldnames = read_previous_rows(self.metrics_file_path)
            self.metrics_keys = sorted(fieldnames)

    def save(self) -> None:
        # A new column updates the writer's columns, then rewrites the file under the new header: a Ctrl-C
        # between the two left rows longer than the header, appended by the finalize after every stop.
        with signals_deferred():
            if self._previous_rows is not None and self.metrics:
                first_step = min(row["step"] for row in self.metrics)
                kept = [row for row in self._previous_rows if float(row["step"]) < first_step]
                self._previous_rows = None
                self._record_new_keys()
                self._write_all(kept)
            super().save()

    def log_hparams(self, params: dict) -> None:  # hparams.yaml, rewritten at every (re)start: atomically too
        self.hparams.update(params)
        path = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
        save_hparams_to_yaml(f"{path}.tmp", self.hparams)
        os.replace(f"{path}.tmp", path)

    def _rewrite_with_new_header(self, fieldnames: list[str]) -> None:
        with open(self.metrics_file_path, newline="") as file:
            rows = list(csv.DictReader(file))
        self._write_all(rows, fieldnames)

    def _write_all(self, rows: list[dict], fieldnames: list[str] | None = None) -> None:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=fieldnames or self.metrics_keys)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.metrics_file_path, buffer.getvalue())


class RunMetricsLogger(CSVLogger):
    """A `CSVLogger` (same files, same layout) whose `metrics.csv` survives kills and resumes."""

    def __init__(self, *args, flush_logs_every_n_steps: int = 1, **kwargs):
        super().__init__(*args, flush_logs_every_n_steps=flush_logs_every_n_steps, **kwargs)

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumableWriter(log_dir=self.log_dir)
        return self._experiment
