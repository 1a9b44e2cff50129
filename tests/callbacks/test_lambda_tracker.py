"""`LambdaTracker` on a tiny GNPlus model: one `lambda/<module path>` key per layer, values equal to
σ(λ) read directly from the layers at the same step, the raw λ and |∂L/∂λ| on request, and the final
σ(λ) in summary.json."""
import json
from types import SimpleNamespace

import pytest
import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks.lambda_tracker import LambdaTracker
from callbacks.run_summary import RunSummary
from models.norms import make_norm
from tests.callbacks.probe_models import WandbCapture


class RecordingLogger(Logger):
    """Keeps every (step, metrics) call, as any Lightning logger receives it."""

    def __init__(self, save_dir):
        super().__init__()
        self.calls: list[tuple[int, dict]] = []
        self._save_dir = str(save_dir)

    name, version = "recording", 0

    @property
    def save_dir(self):  # where the trainer's log_dir, and so summary.json, points
        return self._save_dir

    def log_metrics(self, metrics, step=None):
        self.calls.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


class TinyGNPlusNet(LightningModule):
    """Two GNPlus layers of different variants; records σ(λ), λ and λ.grad itself as the reference."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), make_norm("gn_plus_gn_first", 4, groups=2),
                                  nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1), make_norm("gn_plus_parallel", 4, groups=2))
        self.head = nn.Linear(4, 2)
        self.seen: dict[int, dict[str, list[float]]] = {}  # global step -> reference values

    def forward(self, x):
        return self.head(self.body(x).mean(dim=(2, 3)))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def _layers(self):
        return [self.body[1], self.body[4]]

    def on_after_backward(self):
        self._grads = [abs(float(layer.lambda_.grad)) for layer in self._layers()]

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.seen[self.global_step] = {
            "sigma": [float(torch.sigmoid(layer.lambda_.detach())) for layer in self._layers()],
            "raw": [float(layer.lambda_.detach()) for layer in self._layers()], "grad": self._grads}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def fit(tmp_path, tracker, epochs=2):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(28, 1, 6, 6), torch.randint(0, 2, (28,)))
    model, logger, summary = TinyGNPlusNet(), RecordingLogger(tmp_path), RunSummary()
    trainer = Trainer(max_epochs=epochs, logger=logger, callbacks=[tracker, summary], enable_checkpointing=False,
                      enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
                      accelerator="cpu", default_root_dir=tmp_path)
    trainer.fit(model, DataLoader(data, batch_size=4))  # 7 steps per epoch
    return model, logger, trainer


LAYERS = ("body.1", "body.4")


def test_logs_sigma_lambda_per_layer_at_the_chosen_steps(tmp_path):
    model, logger, trainer = fit(tmp_path, LambdaTracker(every_n_steps=3))
    logged = {step: metrics for step, metrics in logger.calls if any(k.startswith("lambda/") for k in metrics)}
    # step 0 (initial), every 3rd optimizer step, and each epoch end (steps 7 and 14)
    assert sorted(logged) == [0, 3, 6, 7, 9, 12, 14]
    for step, metrics in logged.items():
        assert {k for k in metrics if k.startswith("lambda")} == {f"lambda/{name}" for name in LAYERS}
        assert metrics["epoch"] == (0 if step <= 7 else 1)
        expected = [torch.sigmoid(torch.tensor(1.0)).item()] * 2 if step == 0 else model.seen[step]["sigma"]
        assert [metrics[f"lambda/{name}"] for name in LAYERS] == pytest.approx(expected, abs=1e-7)
    assert logged[14]["lambda/body.1"] != pytest.approx(logged[0]["lambda/body.1"], abs=1e-4)  # λ did move
    final = json.loads((tmp_path / "summary.json").read_text())["lambdas"]
    assert final == pytest.approx(dict(zip(LAYERS, model.seen[14]["sigma"])), abs=1e-7)


def test_raw_lambda_and_gradient_norm_on_request(tmp_path):
    model, logger, _ = fit(tmp_path, LambdaTracker(every_n_steps=2, log_raw=True, log_grad_norm=True), epochs=1)
    logged = {step: metrics for step, metrics in logger.calls if "lambda/body.1" in metrics}
    assert sorted(logged) == [0, 2, 4, 6, 7]
    assert "lambda_grad/body.1" not in logged[0]  # no gradient before the first step
    for step in (2, 4, 6, 7):
        for i, name in enumerate(LAYERS):
            assert logged[step][f"lambda_raw/{name}"] == pytest.approx(model.seen[step]["raw"][i], abs=1e-7)
            assert logged[step][f"lambda_grad/{name}"] == pytest.approx(model.seen[step]["grad"][i], rel=1e-6)
            assert logged[step][f"lambda_grad/{name}"] > 0


def test_a_model_without_gnplus_logs_nothing(tmp_path):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(8, 1, 6, 6), torch.randint(0, 2, (8,)))

    class Plain(TinyGNPlusNet):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4))

        def on_train_batch_end(self, *args):
            pass

        def on_after_backward(self):
            pass

    logger = RecordingLogger(tmp_path)
    Trainer(max_epochs=1, logger=logger, callbacks=[LambdaTracker(every_n_steps=1)], enable_checkpointing=False,
            enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1, accelerator="cpu").fit(
        Plain(), DataLoader(data, batch_size=4))
    assert not [m for _, m in logger.calls if any(k.startswith("lambda") for k in m)]


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_every_n_steps_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="lambda_tracker.every_n_steps must be an integer >= 1"):
        LambdaTracker(every_n_steps=bad)


DDP_SCRIPT = """
import json, sys
import torch
from pytorch_lightning import Trainer
from pytorch_lightning.loggers import CSVLogger
from torch.utils.data import DataLoader, TensorDataset
from callbacks.lambda_tracker import LambdaTracker
from callbacks.run_summary import RunSummary
from tests.callbacks.test_lambda_tracker import TinyGNPlusNet

out = sys.argv[1]
torch.manual_seed(0)
data = TensorDataset(torch.randn(32, 1, 6, 6), torch.randint(0, 2, (32,)))
model = TinyGNPlusNet()
trainer = Trainer(max_epochs=1, accelerator="cpu", devices=2, strategy="ddp", logger=CSVLogger(out, name="", version=""),
                  callbacks=[LambdaTracker(every_n_steps=2), RunSummary()], enable_checkpointing=False,
                  enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)
trainer.fit(model, DataLoader(data, batch_size=4))  # 16 samples per rank: 4 steps
with open(f"{out}/rank{trainer.global_rank}.json", "w") as f:
    json.dump([float(layer.lambda_.detach()) for layer in model._layers()], f)
"""


@pytest.mark.slow
def test_under_ddp_rank_zero_logs_each_step_once(tmp_path):
    """Two CPU processes (gloo): λ is the same on both ranks, the CSV gets one row per logged step with
    σ of that λ, and summary.json the final values."""
    import csv
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    script = tmp_path / "ddp_fit.py"
    script.write_text(DDP_SCRIPT)
    result = subprocess.run([sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, cwd=root,
                            env={**os.environ, "PYTHONPATH": str(root)}, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    lambdas = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    assert lambdas[0] == lambdas[1]  # gradients are all-reduced: every rank holds the same λ
    rows = [row for row in csv.DictReader((tmp_path / "metrics.csv").open()) if row["lambda/body.1"]]
    assert [int(row["step"]) for row in rows] == [0, 2, 4]  # each logged step once, from rank 0 only
    final = torch.sigmoid(torch.tensor(lambdas[0])).tolist()
    assert [float(rows[-1][f"lambda/{name}"]) for name in LAYERS] == pytest.approx(final, abs=1e-6)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert [summary["lambdas"][name] for name in LAYERS] == pytest.approx(final, abs=1e-6)


@pytest.mark.parametrize("is_global_zero", [True, False])
def test_fit_end_logs_the_trajectory_table_and_one_chart_overlaying_the_layers(is_global_zero):
    """The table has a row per (logged step, layer); the chart one series per layer over the steps."""
    tracker = LambdaTracker()
    tracker._layers = {"net.0": None, "net.3": None}
    tracker.history = [(0, [0.5, 0.5]), (10, [0.625, 0.25]), (20, [0.75, 0.125])]
    logger = WandbCapture()
    trainer = SimpleNamespace(callbacks=[], loggers=[RecordingLogger("."), logger], is_global_zero=is_global_zero)
    tracker.on_fit_end(trainer, None)
    if not is_global_zero:
        assert logger.logged == []
        return
    [logged] = logger.logged
    assert logged.keys() == {"lambda_trajectories/table", "lambda_trajectories/chart"}
    table, chart = logged["lambda_trajectories/table"], logged["lambda_trajectories/chart"]
    assert table.columns == ["step", "layer", "sigma_lambda"]
    assert table.data == [[0, "net.0", 0.5], [0, "net.3", 0.5], [10, "net.0", 0.625], [10, "net.3", 0.25],
                          [20, "net.0", 0.75], [20, "net.3", 0.125]]
    assert chart.table.data == [[0, "net.0", 0.5], [10, "net.0", 0.625], [20, "net.0", 0.75],
                                [0, "net.3", 0.5], [10, "net.3", 0.25], [20, "net.3", 0.125]]
    assert chart.spec.string_fields == {"title": "σ(λ) per GNPlus layer", "xname": "step"}


def test_no_chart_without_a_logged_step():
    tracker, logger = LambdaTracker(), WandbCapture()
    tracker.on_fit_end(SimpleNamespace(callbacks=[], loggers=[logger], is_global_zero=True), None)
    assert logger.logged == []


def test_the_history_comes_back_from_a_checkpoint_and_an_older_one_without_it_starts_empty():
    tracker = LambdaTracker()
    tracker.load_state_dict({"history": [[0, [0.5, 0.25]], [10, [0.625, 0.5]]], "last_logged_step": 10,
                             "last_logged_epoch": 1})
    assert tracker.history == [(0, [0.5, 0.25]), (10, [0.625, 0.5])]
    assert tracker.state_dict() == {"history": tracker.history, "last_logged_step": 10, "last_logged_epoch": 1}
    older = LambdaTracker()
    older.load_state_dict({})
    assert older.state_dict() == {"history": [], "last_logged_step": -1, "last_logged_epoch": 0}


@pytest.mark.parametrize("resumed_at, logged_before, logged_again", [(1, 1, True), (10, 10, True), (10, 7, False)])
def test_a_resume_logs_the_checkpoints_step_again_only_if_the_tracker_had_logged_it(resumed_at, logged_before,
                                                                                    logged_again):
    """metrics.csv keeps the earlier rows only up to the resumed run's first row: the step the checkpoint was
    taken at is logged again, with the epoch it had, if the tracker had logged it (at step 1 too)."""
    model, logger = TinyGNPlusNet(), RecordingLogger(".")
    tracker = LambdaTracker()
    tracker.load_state_dict({"history": [[logged_before, [0.5, 0.5]]], "last_logged_step": logged_before,
                             "last_logged_epoch": 3})
    tracker.setup(None, model, "fit")
    trainer = SimpleNamespace(global_step=resumed_at, is_global_zero=True, loggers=[logger], current_epoch=4)
    tracker.on_train_start(trainer, model)
    if not logged_again:
        assert logger.calls == []
        return
    [(step, metrics)] = logger.calls
    assert step == resumed_at and metrics["epoch"] == 3
    assert [step for step, _ in tracker.history] == [logged_before]  # the W&B table keeps the step once
    assert metrics["lambda/body.1"] == pytest.approx(float(torch.sigmoid(model.body[1].lambda_.detach())))


def test_a_lambda_without_a_gradient_has_a_zero_gradient_norm():
    """A GNPlus layer the step's loss did not reach (λ.grad None) logs |∂L/∂λ| = 0, the others their own."""
    model, tracker = TinyGNPlusNet(), LambdaTracker(log_grad_norm=True)
    tracker.setup(None, model, "fit")
    model.body[1].lambda_.grad = torch.full_like(model.body[1].lambda_, -0.25)
    tracker.on_before_optimizer_step(SimpleNamespace(is_global_zero=True), model, None)
    assert tracker._grad.flatten().tolist() == [0.25, 0.0]


def test_a_step_is_logged_once_even_when_two_hooks_end_there():
    """The last batch of an epoch: on_train_batch_end and on_train_epoch_end at the same global step."""
    model, logger = TinyGNPlusNet(), RecordingLogger(".")
    tracker = LambdaTracker(every_n_steps=1)
    tracker.setup(None, model, "fit")
    trainer = SimpleNamespace(global_step=6, is_global_zero=True, loggers=[logger], current_epoch=0, callbacks=[])
    tracker.on_train_batch_end(trainer, model, None, None, 5)
    tracker.on_train_epoch_end(trainer, model)
    assert [step for step, _ in logger.calls] == [6]


def test_the_default_cadence_is_the_readmes():
    """README: "at step 0, every `every_n_steps` (10) and each epoch end"; a fresh tracker logs step 1 too."""
    model, logger = TinyGNPlusNet(), RecordingLogger(".")
    tracker = LambdaTracker()
    tracker.setup(None, model, "fit")
    trainer = SimpleNamespace(global_step=0, is_global_zero=True, loggers=[logger], current_epoch=0)
    for step in range(0, 22):
        trainer.global_step = step
        tracker.on_train_batch_end(trainer, model, None, None, step)
    assert [step for step, _ in logger.calls] == [0, 10, 20]
    fresh = LambdaTracker(every_n_steps=1)
    fresh.setup(None, model, "fit")
    trainer.global_step = 1
    fresh.on_train_batch_end(trainer, model, None, None, 0)
    assert [step for step, _ in logger.calls] == [0, 10, 20, 1]


class SummaryCapture(RunSummary):
    """A RunSummary that keeps what it is given instead of writing summary.json."""

    def update(self, trainer, **fields):
        self.summary.update(fields)


def test_a_nan_sigma_lambda_is_null_in_the_summary():
    model, summary = TinyGNPlusNet(), SummaryCapture()
    tracker = LambdaTracker()
    tracker.setup(None, model, "fit")
    with torch.no_grad():
        model.body[4].lambda_.fill_(float("nan"))
    tracker._record_summary(SimpleNamespace(callbacks=[summary]))
    assert summary.summary["lambdas"] == {"body.1": pytest.approx(float(torch.sigmoid(model.body[1].lambda_.detach()))),
                                          "body.4": None}
