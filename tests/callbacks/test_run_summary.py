"""`RunSummary` in a real Trainer, in the test process: what summary.json says after a run that ends,
fails, is interrupted or resumes, against the values the test module logged itself.

The `lightning fit` tests (tests/lightning_app/) check the same file through a subprocess; these hold the
callback's own rules where a planted bug in it shows (mutmut follows only the test process)."""
import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning import Callback, LightningDataModule, LightningModule, Trainer
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, TensorDataset

import callbacks.run_summary as run_summary
from callbacks.run_summary import RunSummary

# summary.json's fields as the README lists them ("The run directory"; the batch sizes in "Multi-GPU and SLURM")
DOCUMENTED_FIELDS = {"status", "best_val_acc", "final_val_acc", "test_acc", "epochs", "steps", "wall_seconds",
                     "explosion", "data_source", "global_batch_size", "per_device_batch_size", "norm_batch_size",
                     "world_size"}
VAL_ACCS = (0.5, 0.75, 0.625)  # one per epoch; the sanity check's 0.99 must not count


class ScriptedAccuracy(LightningModule):
    """Logs val/acc from VAL_ACCS (the sanity check logs 0.99) and test/acc 0.875; raises `fail_at`'s
    exception at that training step."""

    def __init__(self, fail_at: tuple[int, BaseException] | None = None, log_val: bool = True):
        super().__init__()
        self.layer = torch.nn.Linear(2, 2)
        self.fail_at, self.log_val = fail_at, log_val

    def training_step(self, batch, batch_idx):
        if self.fail_at is not None and self.global_step == self.fail_at[0]:
            raise self.fail_at[1]
        return self.layer(batch[0]).sum()

    def validation_step(self, batch, batch_idx):
        if self.log_val:
            acc = 0.99 if self.trainer.sanity_checking else VAL_ACCS[self.current_epoch % len(VAL_ACCS)]
            self.log("val/acc", acc)

    def test_step(self, batch, batch_idx):
        self.log("test/acc", 0.875)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


class Data(LightningDataModule):
    batch_size, data_source = 4, "/data/fashion-mnist"

    def _loader(self):
        return DataLoader(TensorDataset(torch.randn(8, 2)), batch_size=self.batch_size)

    train_dataloader = val_dataloader = test_dataloader = _loader


class SummaryAtEpochEnd(Callback):
    """summary.json as it is on disk at each epoch's end (after RunSummary's own hook)."""

    def __init__(self):
        self.seen = []

    def on_train_epoch_end(self, trainer, pl_module):
        self.seen.append(json.loads((Path(trainer.log_dir) / "summary.json").read_text()))


def trainer_for(tmp_path, *callbacks, epochs=3, **options):
    options = {"enable_checkpointing": False, **options}
    return Trainer(default_root_dir=tmp_path, max_epochs=epochs, limit_train_batches=2, logger=False,
                   enable_progress_bar=False, enable_model_summary=False, callbacks=[RunSummary(), *callbacks],
                   accelerator="cpu", **options)


def summary(tmp_path) -> dict:
    return json.loads((tmp_path / "summary.json").read_text())


def test_a_completed_run_records_its_accuracies_counts_batches_and_source(tmp_path):
    at_epoch_end = SummaryAtEpochEnd()
    trainer = trainer_for(tmp_path, at_epoch_end)
    started = time.perf_counter()
    trainer.fit(ScriptedAccuracy(), datamodule=Data())
    elapsed = time.perf_counter() - started
    assert [(s["status"], s["epochs"], s["steps"]) for s in at_epoch_end.seen] == [
        ("running", 1, 2), ("running", 2, 4), ("running", 3, 6)]
    written = summary(tmp_path)
    assert set(written) == DOCUMENTED_FIELDS
    assert {k: written[k] for k in ("status", "best_val_acc", "final_val_acc", "test_acc", "epochs", "steps",
                                    "explosion", "data_source")} == {
        "status": "completed", "best_val_acc": 0.75, "final_val_acc": 0.625, "test_acc": None, "epochs": 3,
        "steps": 6, "explosion": None, "data_source": "/data/fashion-mnist"}
    assert {k: written[k] for k in ("global_batch_size", "per_device_batch_size", "norm_batch_size", "world_size")} \
        == {"global_batch_size": 4, "per_device_batch_size": 4, "norm_batch_size": 4, "world_size": 1}
    assert isinstance(written["wall_seconds"], float) and 0 < written["wall_seconds"] <= elapsed
    assert round(written["wall_seconds"], 3) == written["wall_seconds"]
    trainer.test(trainer.lightning_module, datamodule=Data(), verbose=False)
    assert summary(tmp_path)["test_acc"] == 0.875 and summary(tmp_path)["status"] == "completed"


def test_a_run_that_logs_no_validation_accuracy_records_none(tmp_path):
    trainer_for(tmp_path, epochs=1).fit(ScriptedAccuracy(log_val=False), datamodule=Data())
    assert (summary(tmp_path)["best_val_acc"], summary(tmp_path)["final_val_acc"]) == (None, None)


@pytest.mark.parametrize("exception,status,step", [
    (SIGTERMException(), "interrupted", 3),
    (ValueError("a loss of nan\nsecond line"), "failed", 3),
    (RuntimeError("x" * 600), "failed", 1),  # in the first epoch: no epoch ended
])
def test_an_exception_ends_the_run_failed_or_interrupted_with_its_first_line(tmp_path, exception, status, step):
    trainer = trainer_for(tmp_path)
    with pytest.raises(type(exception)):
        trainer.fit(ScriptedAccuracy(fail_at=(step, exception)), datamodule=Data())
    written = summary(tmp_path)
    assert (written["status"], written["epochs"], written["steps"]) == (status, step // 2, step)
    expected = {"ValueError": "ValueError: a loss of nan", "RuntimeError": "RuntimeError: " + "x" * 486}
    assert written.get("error") == expected.get(type(exception).__name__)


def test_ctrl_c_is_an_interruption_not_a_failure():
    assert run_summary.is_interruption(KeyboardInterrupt()) and run_summary.is_interruption(SIGTERMException())
    assert not run_summary.is_interruption(ValueError())


def test_a_run_that_fails_before_it_starts_leaves_no_summary(tmp_path):
    class BrokenData(Data):
        def setup(self, stage):
            raise FileNotFoundError("no data files")

    with pytest.raises(FileNotFoundError):
        trainer_for(tmp_path).fit(ScriptedAccuracy(), datamodule=BrokenData())
    assert not (tmp_path / "summary.json").exists()


def test_a_disk_that_refuses_the_last_write_does_not_hide_the_error(tmp_path, monkeypatch):
    real_write = run_summary.write_json

    def write_json(path, data):
        if data["status"] == "failed":
            raise OSError(28, "No space left on device", str(path))
        real_write(path, data)

    monkeypatch.setattr(run_summary, "write_json", write_json)
    with pytest.raises(ValueError, match="the real error"):
        trainer_for(tmp_path).fit(ScriptedAccuracy(fail_at=(1, ValueError("the real error"))), datamodule=Data())
    assert summary(tmp_path)["status"] == "running"  # what the last write that worked left


def test_a_resumed_run_keeps_its_best_accuracy_epochs_and_wall_time(tmp_path):
    first = trainer_for(tmp_path, epochs=2, enable_checkpointing=True)
    first.fit(ScriptedAccuracy(), datamodule=Data())
    before = summary(tmp_path)
    assert (before["best_val_acc"], before["final_val_acc"], before["epochs"]) == (0.75, 0.75, 2)
    checkpoint = next(tmp_path.rglob("*.ckpt"))
    state = torch.load(checkpoint, weights_only=True)["callbacks"]["RunSummary"]
    assert state == {"best_val_acc": 0.75, "final_val_acc": 0.75, "epochs": 2, "wall_seconds": state["wall_seconds"]}
    trainer_for(tmp_path, epochs=3).fit(ScriptedAccuracy(), datamodule=Data(), ckpt_path=checkpoint)
    after = summary(tmp_path)
    assert (after["best_val_acc"], after["final_val_acc"], after["epochs"], after["status"]) == (
        0.75, 0.625, 3, "completed")
    assert after["wall_seconds"] > state["wall_seconds"] > 0


def test_a_state_without_fields_starts_from_nothing():
    summary_callback = RunSummary()
    summary_callback.load_state_dict({"best_val_acc": 0.5, "final_val_acc": 0.25, "epochs": 4, "wall_seconds": 9.5})
    assert summary_callback.state_dict() == {"best_val_acc": 0.5, "final_val_acc": 0.25, "epochs": 4,
                                             "wall_seconds": 9.5}
    summary_callback.load_state_dict({})
    assert summary_callback.state_dict() == {"best_val_acc": None, "final_val_acc": None, "epochs": 0,
                                             "wall_seconds": 0.0}


def test_only_global_rank_zero_writes_and_update_adds_fields(tmp_path):
    callback = RunSummary()
    rank = SimpleNamespace(log_dir=str(tmp_path), is_global_zero=False, global_step=7, callbacks=[callback])
    callback.update(rank, explosion={"step": 3})
    assert not (tmp_path / "summary.json").exists()
    rank.is_global_zero = True
    callback.update(rank, explosion={"step": 3})
    assert summary(tmp_path)["explosion"] == {"step": 3} and summary(tmp_path)["steps"] == 7
    assert RunSummary.find(rank) is callback and RunSummary.find(SimpleNamespace(callbacks=[])) is None


def test_no_batch_size_to_record_without_a_data_module_that_has_one():
    for datamodule in (None, SimpleNamespace(), SimpleNamespace(batch_size="128")):
        trainer = SimpleNamespace(datamodule=datamodule, world_size=1, strategy=SimpleNamespace())
        assert run_summary.batch_sizes(trainer) == {}
