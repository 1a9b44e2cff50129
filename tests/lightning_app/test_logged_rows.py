"""Per-step values reach the loggers only on the steps Lightning writes (models/logging_steps.py), and
`metrics.csv` is byte for byte what it was when every step logged them.

The "before" run is the implementation this replaced, run in the same test: `ImageClassifier` logging
`train/loss` and the accuracy object in every `training_step` (the accuracy through its forward),
and `ExplosionDetector` logging `grad/norm` at every optimizer step, patched in for one `lightning
fit`; the "after" run is the code as it is. Training is the same (logging draws no random number), so
every row must be the same: validation rows, epoch rows (`train/acc`), the rows of logging steps,
and the row Lightning writes off schedule when the detector stops the run.
"""
import pytest

from callbacks.explosion import ExplosionDetector
from lightning_app.command import main
from models.classifier import ImageClassifier
from tests.helpers import run_dirs, tiny_args


def log_every_step(monkeypatch) -> None:
    """The logging of ImageClassifier and ExplosionDetector before they logged on logging steps only."""
    def training_step(self, batch, batch_idx):
        loss, logits = self.compute_loss(batch)
        self.train_acc(logits, batch[1])
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    detector_step = ExplosionDetector.on_before_optimizer_step

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        detector_step(self, trainer, pl_module, optimizer)
        if self._step_norm is not None:
            pl_module.log("grad/norm", self._step_norm, on_step=True, on_epoch=False)
            self._step_norm = None

    monkeypatch.setattr(ImageClassifier, "training_step", training_step)
    monkeypatch.setattr(ImageClassifier, "on_train_batch_end", lambda self, outputs, batch, batch_idx: None)
    monkeypatch.setattr(ImageClassifier, "on_train_epoch_end", lambda self: None)
    monkeypatch.setattr(ExplosionDetector, "on_before_optimizer_step", on_before_optimizer_step)


def metrics_text(data_dir, root, *extra) -> str:
    main(tiny_args(data_dir, root, *extra))
    (run_dir,) = run_dirs(root)
    return (run_dir / "metrics.csv").read_text()


@pytest.mark.parametrize("extra", [
    # 6 steps an epoch, rows every 4 steps: logging steps inside epochs and epoch ends apart from them
    ("--trainer.log_every_n_steps", "4", "--model.norm", "bn"),
    # two batches a step, rows every 3 steps
    ("--trainer.log_every_n_steps", "3", "--trainer.accumulate_grad_batches", "2"),
    # a spike rule that fires at once and stops the run: Lightning writes the stop's row off schedule
    ("--trainer.log_every_n_steps", "4", "--explosion.spike_action", "stop", "--explosion.spike_factor", "1.0001",
     "--explosion.warmup_steps", "2"),
], ids=["epochs", "accumulation", "stop"])
def test_metrics_csv_is_what_logging_every_step_wrote(data_dir, tmp_path, monkeypatch, extra):
    after = metrics_text(data_dir, tmp_path / "after", *extra)
    with monkeypatch.context() as patched:
        log_every_step(patched)
        before = metrics_text(data_dir, tmp_path / "before", *extra)
    assert after == before
    header, *rows = [line.split(",") for line in after.splitlines()]
    column = {name: i for i, name in enumerate(header)}
    logged_steps = {int(r[column["step"]]) for r in rows if r[column["train/loss"]]}
    assert logged_steps and all(r[column["grad/norm"]] for r in rows if r[column["train/loss"]])
    if "stop" in extra:
        (stop,) = {int(r[column["step"]]) for r in rows if r[column["explosion/step"]]}
        assert stop in logged_steps and (stop + 1) % 4 != 0  # the stop's own row, off the schedule
    else:
        assert any(r[column["train/acc"]] for r in rows) and any(r[column["val/acc"]] for r in rows)
