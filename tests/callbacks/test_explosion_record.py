"""What `ExplosionDetector` writes about an event (explosion.json, the loggers' `explosion/*`, grad/norm),
the checkpoint it leaves (only `stop` saves one, and it is one step's weights with that step's BN
statistics), the events of the last unread steps and of runs without an optimizer step or without
weights, the window of its running reference, and the defaults the README states."""
import csv
import inspect
import json
import math
import re

import pytest
import torch
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger

from torch.utils.data import DataLoader, TensorDataset

from callbacks.explosion import ExplosionDetector
from callbacks.run_summary import RunSummary
from tests.callbacks.probe_models import MetricsCapture
from tests.callbacks.test_explosion import Planted, assert_same_state
from tests.helpers import ROOT


class TwoGroups(Planted):
    """Planted with SGD over two parameter groups: the first layer named "input", the rest unnamed."""

    def configure_optimizers(self):
        first = list(self.net[0].parameters())
        rest = [p for p in self.parameters() if all(p is not q for q in first)]
        return torch.optim.SGD([{"params": first, "lr": 0.01, "name": "input"}, {"params": rest, "lr": 0.02}])


class NoUpdates(Planted):
    """No step has a gradient (training_step returns None: the optimizer steps over nothing); batch 1
    leaves an infinite weight."""

    def training_step(self, batch, batch_idx):
        if batch_idx == 1:
            with torch.no_grad():
                self.net[3].bias[0] = math.inf
        return None


def run(tmp_path, module, max_steps, checkpoints=True, max_epochs=-1, **detector_args):
    capture = MetricsCapture()
    callbacks = [ExplosionDetector(**detector_args), RunSummary()]
    if checkpoints:
        callbacks.append(ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True, save_top_k=0,
                                         every_n_train_steps=4))
    torch.manual_seed(0)
    trainer = Trainer(max_steps=max_steps, max_epochs=max_epochs, limit_train_batches=4, accelerator="cpu",
                      devices=1, logger=[CSVLogger(tmp_path, name="run"), capture], callbacks=callbacks,
                      enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=checkpoints)
    trainer.fit(module)
    explosion = tmp_path / "run" / "version_0" / "explosion.json"
    return json.loads(explosion.read_text()) if explosion.is_file() else None, capture


def test_the_record_names_the_parameters_the_learning_rates_and_the_step_of_its_norms(tmp_path):
    module = TwoGroups({3: "inf_grad"})
    record, capture = run(tmp_path, module, max_steps=10)
    assert (record["step"], record["trigger"], record["grad_norms_of_step"]) == (3, "inf_grad", 3)
    assert record["lr"] == {"input": 0.01, "1": 0.02}
    assert record["spike_quantile"] == 0.9 and math.isfinite(record["running_reference"])
    names = {name for name, _ in module.named_parameters()}
    assert [sorted(entry) for entry in record["top_grad_norms"]] == [["grad_norm", "parameter"]] * len(names)
    assert record["top_grad_norms"][0] == {"parameter": "net.0.weight", "grad_norm": "inf"}  # the infinite one first
    assert {entry["parameter"] for entry in record["top_grad_norms"]} == names
    assert capture.rows[3]["explosion/step"] == 3 and capture.rows[3]["explosion/kind"] == 2  # inf_grad


def test_a_warning_saves_no_checkpoint_and_leaves_save_last_on(tmp_path):
    module = Planted({5: "big_spike"})
    record, _ = run(tmp_path, module, max_steps=10)
    assert (record["trigger"], record["action"], record["checkpoint"], record["stopped"]) == ("spike", "warn", None,
                                                                                              False)
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 8  # ModelCheckpoint's own save at step 8, after the warning at step 5


def test_a_stop_without_a_model_checkpoint_saves_nothing_and_still_stops(tmp_path):
    module = Planted({2: "nan_loss"})
    record, _ = run(tmp_path, module, max_steps=10, checkpoints=False)
    assert (record["step"], record["stopped"], record["checkpoint"]) == (2, True, None)
    assert max(module.states) == 2 and not list(tmp_path.rglob("*.ckpt"))


def test_a_run_without_an_optimizer_step_is_still_recorded_by_the_final_check(tmp_path):
    record, _ = run(tmp_path, NoUpdates({}), max_steps=-1, checkpoints=False, max_epochs=1)
    assert (record["trigger"], record["step"], record["top_grad_norms"]) == ("nonfinite_weights", 4, [])
    assert record["running_reference"] is None and record["value"] == "nan"  # no history: null; no loss: "nan"


class PlantedByBatch(Planted):
    """Planted keyed by micro-batch (4 per epoch), so that one micro-batch of an accumulation window can be bad."""

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        bad = self.plants.get(4 * self.trainer.current_epoch + batch_idx) == "nan_constant"
        return loss + torch.tensor(math.nan) if bad else loss


def test_with_accumulation_a_nan_micro_batch_loss_is_the_steps_and_grad_norm_is_logged_per_update(tmp_path):
    """Two micro-batches per update: the NaN loss of the window's first one (its gradient finite) makes
    that update's loss NaN; grad/norm is logged once per update, on Lightning's logging steps."""
    module = PlantedByBatch({4: "nan_constant"})  # batches 4 and 5 make update 2
    torch.manual_seed(0)
    trainer = Trainer(max_steps=4, accumulate_grad_batches=2, log_every_n_steps=1,
                      accelerator="cpu", devices=1, logger=CSVLogger(tmp_path, name="run"), enable_progress_bar=False,
                      enable_model_summary=False, enable_checkpointing=False,
                      callbacks=[ExplosionDetector(action="warn"), RunSummary()])
    trainer.fit(module)
    record = json.loads((tmp_path / "run" / "version_0" / "explosion.json").read_text())
    assert (record["trigger"], record["step"], record["stopped"]) == ("nan_loss", 2, False)
    rows = list(csv.DictReader(open(tmp_path / "run" / "version_0" / "metrics.csv")))
    logged = [(int(r["step"]), float(r["grad/norm"])) for r in rows if r.get("grad/norm")]
    assert [step for step, _ in logged] == [0, 1, 2, 3]
    assert [norm for _, norm in logged] == pytest.approx([module.norms[s] for s in range(4)], rel=1e-5)


def test_grad_norm_is_logged_only_on_lightnings_logging_steps(tmp_path):
    module = Planted({})
    torch.manual_seed(0)
    trainer = Trainer(max_steps=6, log_every_n_steps=3, accelerator="cpu", devices=1,
                      logger=CSVLogger(tmp_path, name="run"), enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, callbacks=[ExplosionDetector(), RunSummary()])
    trainer.fit(module)
    rows = list(csv.DictReader(open(tmp_path / "run" / "version_0" / "metrics.csv")))
    assert [int(r["step"]) for r in rows if r.get("grad/norm")] == [2, 5]


def test_an_event_among_the_last_unread_steps_is_read_at_the_end(tmp_path):
    """sync_every 4 over 10 steps: steps 8 and 9 are still unread when training ends."""
    module = Planted({9: "nan_loss"})
    record, _ = run(tmp_path, module, max_steps=10, sync_every=4)
    assert (record["step"], record["trigger"], record["stopped"]) == (9, "nan_loss", True)
    assert record["checkpoint"] is None  # the NaN update was applied: no finite state to save


def test_the_final_event_of_an_infinite_weight_reports_the_last_finite_loss(tmp_path):
    record, _ = run(tmp_path, Planted({9: "inf_weight"}), max_steps=10)
    assert record["trigger"] == "nonfinite_weights" and math.isfinite(record["value"])


class NoWeights(LightningModule):
    """A fixed transform: no parameter, no buffer, nothing to train."""

    def training_step(self, batch, batch_idx):
        return None

    def configure_optimizers(self):
        return None

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.zeros(4, 2)), batch_size=2)


def test_a_module_without_weights_ends_without_an_event(tmp_path):
    record, _ = run(tmp_path, NoWeights(), max_steps=-1, checkpoints=False, max_epochs=1)
    assert record is None
    assert json.loads((tmp_path / "run" / "version_0" / "summary.json").read_text())["status"] == "completed"


def test_the_documented_defaults_are_the_detectors():
    """README's "Gradient-explosion detection" gives each default as `name`=value."""
    section = (ROOT / "README.md").read_text().split("## Gradient-explosion detection")[1].split("\n## ")[0]
    documented = {name: float(value) for name, value in re.findall(r"`(\w+)`=([0-9.e-]+)", section)}
    defaults = {name: p.default for name, p in inspect.signature(ExplosionDetector).parameters.items()}
    assert set(documented) == {"spike_factor", "spike_quantile", "window", "spike_patience", "warmup_steps",
                               "vanish_threshold", "vanish_patience", "max_skips"}
    assert documented == {name: defaults[name] for name in documented}
    assert (defaults["action"], defaults["spike_action"]) == ("stop", "warn")
    assert re.search(r"`action` \(non-finite values, default\s+`stop`\) and `spike_action` \(spike and vanish, "
                     r"default `warn`\)", section)


def test_the_running_reference_forgets_norms_older_than_its_window(tmp_path):
    """window=2: two outliers at steps 2 and 3 have left it by step 7, whose spike (×1000) is caught;
    a window that kept them would put the reference at an outlier's norm."""
    module = Planted({2: "big_spike", 3: "big_spike", 7: "spike"}, optimizer="sgd", lr=0.0001)
    _, capture = run(tmp_path, module, max_steps=9, window=2)
    assert sorted(step for step, row in capture.rows.items() if "explosion/step" in row) == [2, 3, 7]


def test_a_spike_that_stops_a_warn_only_detector_still_undoes_the_bn_statistics(tmp_path):
    module = Planted({6: "spike"}, optimizer="sgd", lr=0.0001)
    record, _ = run(tmp_path, module, max_steps=10, action="warn", spike_action="stop")
    assert (record["step"], record["trigger"], record["stopped"]) == (6, "spike", True)
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert_same_state(saved["state_dict"], module.states[6][0])  # BN running statistics of step 5 included


def test_a_late_read_stop_saves_the_previous_steps_weights_with_their_own_bn_statistics(tmp_path):
    """sync_every=4: the spike of step 5 is read at step 7; updates 5 and 6 were applied, update 7 is
    dropped, and step 7's forward pass is undone too: the checkpoint is the state after step 6, whole."""
    module = Planted({5: "spike"}, optimizer="sgd", lr=0.0001)
    record, _ = run(tmp_path, module, max_steps=12, sync_every=4, spike_action="stop")
    assert (record["step"], record["stopped"]) == (5, True) and record["checkpoint"].endswith("last.ckpt")
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 7 and max(module.states) == 7
    assert_same_state(saved["state_dict"], module.states[7][0])
