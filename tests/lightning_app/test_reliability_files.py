"""The pieces that make kills harmless, one by one: atomic checkpoint writes, metrics.csv across a
resume, the RNG states a checkpoint carries."""
import csv
import io
import os
import random
import signal

import numpy as np
import pytest
import torch

from callbacks.rng_state import RNGState
from lightning_app.checkpoints import AtomicCheckpointIO, load_checkpoint_file
from lightning_app.run_metrics import RunMetricsLogger


def test_atomic_checkpoint_write_replaces_whole_or_not_at_all(tmp_path, monkeypatch):
    io_plugin = AtomicCheckpointIO()
    path = tmp_path / "checkpoints" / "last.ckpt"
    io_plugin.save_checkpoint({"state_dict": {"w": torch.arange(4.0)}, "global_step": 1}, path)
    assert load_checkpoint_file(path)["global_step"] == 1

    real_save = torch.save

    def fail_halfway(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer)
        f.write(buffer.getvalue()[:100])
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        io_plugin.save_checkpoint({"state_dict": {"w": torch.zeros(4)}, "global_step": 2}, path)
    assert load_checkpoint_file(path)["global_step"] == 1  # the previous checkpoint, intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.ckpt"]  # no temporary file left


def read_rows(path):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]


def test_metrics_csv_keeps_the_first_segment_across_a_resume(tmp_path):
    first = RunMetricsLogger(save_dir=tmp_path, name="exp", version="run")
    for step in range(6):
        first.log_metrics({"train/loss": float(step)}, step=step)  # on disk at once: no finalize needed
    metrics_file = tmp_path / "exp" / "run" / "metrics.csv"
    with open(metrics_file, "a") as f:
        f.write("0.5,6")  # the row a kill cut short, without its newline
    # The checkpoint was at step 4: the resumed segment logs steps 4, 5 again, then a new column.
    second = RunMetricsLogger(save_dir=tmp_path, name="exp", version="run")
    second.log_metrics({"train/loss": 40.0}, step=4)
    second.log_metrics({"train/loss": 50.0}, step=5)
    second.log_metrics({"val/acc": 0.9}, step=5)
    assert read_rows(metrics_file) == [
        {"train/loss": "0.0", "step": "0"}, {"train/loss": "1.0", "step": "1"}, {"train/loss": "2.0", "step": "2"},
        {"train/loss": "3.0", "step": "3"}, {"train/loss": "40.0", "step": "4"}, {"train/loss": "50.0", "step": "5"},
        {"val/acc": "0.9", "step": "5"},
    ]
    second.log_hyperparams({"lr": 0.1})
    assert (metrics_file.parent / "hparams.yaml").read_text() == "lr: 0.1\n"
    assert sorted(p.name for p in metrics_file.parent.iterdir()) == ["hparams.yaml", "metrics.csv"]  # no temp files


def test_ctrl_c_during_a_new_column_leaves_a_metrics_csv_a_resume_can_read(tmp_path, monkeypatch):
    """A new column makes the logger rewrite metrics.csv under a new header; a Ctrl-C arriving in that
    rewrite once left the logger's columns ahead of the file's header, and the finalize that follows every
    stop appended rows longer than the header: the resume then failed ("dict contains fields not in
    fieldnames: None"). The signal here is a real SIGINT, handled as in `lightning fit`."""
    from lightning_app import run_metrics
    from lightning_app.run.interrupt import recording

    first = RunMetricsLogger(save_dir=tmp_path, name="exp", version="run")
    metrics_file = tmp_path / "exp" / "run" / "metrics.csv"
    real_write = run_metrics.atomic_write_text

    def ctrl_c_then_write(path, text):
        os.kill(os.getpid(), signal.SIGINT)  # arrives as the logger is about to write the new header
        real_write(path, text)

    with recording():
        first.log_metrics({"train/loss": 1.0}, step=0)
        monkeypatch.setattr(run_metrics, "atomic_write_text", ctrl_c_then_write)
        with pytest.raises(KeyboardInterrupt):
            first.log_metrics({"train/loss": 0.5, "val/acc": 0.25}, step=1)  # a new column: the rewrite
        monkeypatch.undo()
        first.finalize("interrupted")  # as Lightning's teardown does after a Ctrl-C
    header, *rows = metrics_file.read_text().splitlines()
    assert all(len(row.split(",")) == len(header.split(",")) for row in rows), metrics_file.read_text()
    second = RunMetricsLogger(save_dir=tmp_path, name="exp", version="run")  # the resume
    second.log_metrics({"train/loss": 0.4}, step=1)
    assert read_rows(metrics_file) == [{"train/loss": "1.0", "step": "0"}, {"train/loss": "0.4", "step": "1"}]


def test_a_metrics_csv_damaged_that_way_before_the_fix_still_resumes(tmp_path):
    metrics_file = tmp_path / "exp" / "run" / "metrics.csv"
    metrics_file.parent.mkdir(parents=True)
    metrics_file.write_text("step,train/loss\n0,1.0\n1,0.5,0.25\n")  # the stop's row, under a stale header
    resumed = RunMetricsLogger(save_dir=tmp_path, name="exp", version="run")
    resumed.log_metrics({"train/loss": 0.4}, step=2)  # even where the resume starts past the stop's row
    assert read_rows(metrics_file) == [{"train/loss": "1.0", "step": "0"}, {"train/loss": "0.4", "step": "2"}]


def test_rng_states_come_back_before_the_first_resumed_batch():
    callback = RNGState()
    torch.manual_seed(3), np.random.seed(3), random.seed(3)
    saved = callback.state_dict()
    buffer = io.BytesIO()
    torch.save(saved, buffer)  # what a checkpoint holds must load with torch.load(weights_only=True)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=True)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(99), np.random.seed(99), random.seed(99)  # a resumed process starts elsewhere
    resumed = RNGState()
    resumed.load_state_dict(restored)
    torch.rand(5)  # drawn between restore and training (sanity validation, loaders): must not matter
    resumed.on_train_batch_start(None, None, None, 0)
    drawn = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(drawn[0], expected[0]) and np.array_equal(drawn[1], expected[1]) and drawn[2] == expected[2]
    resumed.on_train_batch_start(None, None, None, 1)  # only the first batch restores
    assert not torch.equal(torch.rand(3), expected[0])
