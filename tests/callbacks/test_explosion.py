"""ExplosionDetector on a tiny planted module: each trigger at the exact step, and what each action leaves.

References are independent of the detector: torch's `get_total_norm` of the gradient, a copy of the
module's and optimizer's state taken by the module itself at the start of every step, and
`statistics.median_low` of the recorded norms.
"""
import copy
import csv
import json
import math
import re
import statistics

import pytest
import torch
import torch.nn.functional as F
from pytorch_lightning import LightningModule, Trainer
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks.explosion import ExplosionDetector
from callbacks.run_summary import RunSummary


class Planted(LightningModule):
    """A small MLP with BN; `plants` maps a global step to what goes wrong there."""

    def __init__(self, plants: dict[int, str], optimizer: str = "adam", lr: float = 0.01):
        super().__init__()
        self.plants, self.optimizer_name, self.lr = plants, optimizer, lr
        self.net = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3))
        self.states: dict[int, tuple[dict, dict]] = {}  # step -> (module state, optimizer state) at its start
        self.norms: dict[int, float] = {}  # step -> torch's global gradient norm
        self.module_norms: dict[int, dict[str, float]] = {}

    def training_step(self, batch, batch_idx):
        step = self.trainer.global_step
        self.states[step] = (copy.deepcopy(self.state_dict()),
                             copy.deepcopy(self.optimizers().optimizer.state_dict()["state"]))
        x, y = batch
        loss = F.cross_entropy(self.net(x), y)
        plant = self.plants.get(step)
        if plant == "nan_loss":
            loss = loss * math.nan
        elif plant == "nan_constant":  # a NaN loss whose gradient is finite: no gradient flows through a constant
            loss = loss + torch.tensor(math.nan)
        elif plant == "spike":
            loss = loss * 1000.0
        elif plant == "big_spike":
            loss = loss * 10000.0
        elif plant == "zero":
            loss = loss * 0.0
        return loss

    def on_after_backward(self):
        step = self.trainer.global_step
        if self.plants.get(step) == "inf_grad":
            self.net[0].weight.grad[0, 0] = math.inf
        grads = [p.grad for p in self.parameters()]
        self.norms[step] = float(torch.nn.utils.get_total_norm(grads))
        self.module_norms[step] = {
            f"net.{i}": float(torch.nn.utils.get_total_norm([p.grad for p in m.parameters()]))
            for i, m in enumerate(self.net) if list(m.parameters())}

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.plants.get(self.trainer.global_step - 1) == "inf_weight":  # after that step's update
            with torch.no_grad():
                self.net[3].bias[0] = math.inf

    def configure_optimizers(self):
        if self.optimizer_name == "adam":
            return torch.optim.Adam(self.parameters(), lr=self.lr)
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)

    def train_dataloader(self):
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(64, 8, generator=generator)
        y = torch.randint(0, 3, (64,), generator=generator)
        return DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=generator)


def fit(tmp_path, module, max_steps, **detector_args):
    torch.manual_seed(0)
    checkpoints = ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True, save_top_k=0,
                                  every_n_train_steps=4)
    trainer = Trainer(max_steps=max_steps, max_epochs=-1, accelerator="cpu", devices=1,
                      logger=CSVLogger(tmp_path, name="run"),
                      callbacks=[ExplosionDetector(**detector_args), RunSummary(), checkpoints],
                      log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module)
    run_dir = tmp_path / "run" / "version_0"
    explosion = run_dir / "explosion.json"
    return (json.loads((run_dir / "summary.json").read_text()),
            json.loads(explosion.read_text()) if explosion.is_file() else None,
            list(csv.DictReader(open(run_dir / "metrics.csv"))))


def assert_same_state(actual: dict, expected: dict):
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if isinstance(value, dict):
            assert_same_state(actual[key], value)
        else:
            assert torch.equal(actual[key], value), key


def load_last(tmp_path):
    return torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)


@pytest.mark.parametrize("plant", ["nan_loss", "inf_grad"])
def test_stop_at_the_planted_step_keeps_the_state_of_the_step_before(tmp_path, plant):
    k = 6
    module = Planted({k: plant})
    summary, explosion, _ = fit(tmp_path, module, max_steps=20)
    assert summary["status"] == "exploded" and summary["explosion"]["trigger"] == plant
    assert summary["explosion"]["stopped"] and summary["test_acc"] is None
    assert explosion["trigger"] == plant and explosion["step"] == k and explosion["epoch"] == k // 4
    assert explosion["batch_idx"] == k % 4 and explosion["checkpoint"].endswith("last.ckpt")
    assert max(module.states) == k  # no step after k was trained
    checkpoint = load_last(tmp_path)
    assert checkpoint["global_step"] == k  # the detector's: ModelCheckpoint did not replace it
    weights, optimizer_state = module.states[k]
    assert all(torch.isfinite(t).all() for t in checkpoint["state_dict"].values() if t.is_floating_point())
    assert_same_state(checkpoint["state_dict"], weights)  # BN running stats too: the bad forward is undone
    assert_same_state(checkpoint["optimizer_states"][0]["state"], optimizer_state)


def test_planted_spike_is_detected_at_its_step_with_torch_norm_and_median(tmp_path):
    k, window = 12, 9
    module = Planted({k: "spike"}, optimizer="sgd", lr=0.01)
    summary, explosion, rows = fit(tmp_path, module, max_steps=30, window=window, warmup_steps=5,
                                   grad_norm_every_n_steps=5, spike_action="stop", spike_quantile=0.5)
    assert summary["status"] == "exploded" and explosion["trigger"] == "spike" and explosion["step"] == k
    assert explosion["events"] == 1  # no false alarm before k
    assert explosion["value"] == pytest.approx(module.norms[k], rel=1e-5)
    expected_median = statistics.median_low([module.norms[s] for s in range(k - window, k)])
    assert explosion["running_reference"] == pytest.approx(expected_median, rel=1e-5)
    assert explosion["value"] > 10 * explosion["running_reference"]
    logged = {int(r["step"]): float(r["grad/norm"]) for r in rows if r.get("grad/norm")}
    assert logged.keys() == set(range(k + 1))
    for step, norm in logged.items():
        assert norm == pytest.approx(module.norms[step], rel=1e-5)
    per_module = [r for r in rows if r.get("grad_norm/net.0")]
    assert [int(r["step"]) for r in per_module] == [0, 5, 10]
    for r in per_module:
        for name, norm in module.module_norms[int(r["step"])].items():
            assert float(r[f"grad_norm/{name}"]) == pytest.approx(norm, rel=1e-5)
    top = explosion["top_grad_norms"]
    norms = [t["grad_norm"] for t in top]
    assert len(top) == 6 and norms == sorted(norms, reverse=True)


def test_warn_reports_every_vanishing_run_and_trains_on(tmp_path):
    module = Planted({s: "zero" for s in range(5, 40)})
    summary, explosion, rows = fit(tmp_path, module, max_steps=18, action="warn", vanish_threshold=1e-6,
                                   vanish_patience=4)
    assert summary["status"] == "completed" and max(module.states) == 17
    assert explosion["trigger"] == "vanish" and explosion["step"] == 8 and explosion["value"] == 0.0
    assert explosion["events"] == 3 and summary["explosion"]["events"] == 3  # steps 8, 12, 16
    assert sorted(int(float(r["explosion/step"])) for r in rows if r.get("explosion/step")) == [8, 12, 16]
    assert {r["explosion/kind"] for r in rows if r.get("explosion/kind")} == {"4"}


def test_skip_step_leaves_weights_and_optimizer_state_unchanged_and_trains_on(tmp_path):
    k = 6
    module = Planted({k: "nan_loss"})
    summary, explosion, _ = fit(tmp_path, module, max_steps=12, action="skip_step")
    assert summary["status"] == "completed" and max(module.states) == 11
    assert explosion["step"] == k and explosion["skipped"] == 1
    (before, optimizer_before), (after, optimizer_after) = module.states[k], module.states[k + 1]
    assert_same_state(after, before)
    assert_same_state(optimizer_after, optimizer_before)  # Adam's moments and step count untouched
    final = module.state_dict()
    assert all(torch.isfinite(t).all() for t in final.values() if t.is_floating_point())
    assert not torch.equal(final["net.0.weight"], after["net.0.weight"])  # later steps did train


def test_skip_step_stops_once_max_skips_were_used(tmp_path):
    module = Planted({3: "nan_loss", 5: "nan_loss", 7: "nan_loss"})
    summary, explosion, _ = fit(tmp_path, module, max_steps=20, action="skip_step", max_skips=2)
    assert summary["status"] == "exploded" and max(module.states) == 7
    assert explosion["step"] == 7 and explosion["events"] == 3 and explosion["skipped"] == 2
    assert explosion["first_event"] == {"step": 3, "trigger": "nan_loss", "value": "nan", "action": "skip_step"}
    assert explosion["stopped"] and explosion["action"] == "skip_step"
    assert_same_state(load_last(tmp_path)["state_dict"], module.states[7][0])


def test_batched_reads_still_name_the_exact_step_and_keep_nan_off_disk(tmp_path):
    k = 5  # read at step 7 (steps 4-7 form one batch of reads): the NaN update of step 5 was applied
    module = Planted({k: "nan_loss"})
    summary, explosion, _ = fit(tmp_path, module, max_steps=20, sync_every=4)
    assert summary["status"] == "exploded" and explosion["step"] == k and explosion["trigger"] == "nan_loss"
    assert max(module.states) == 7 and explosion["checkpoint"] is None
    checkpoint = load_last(tmp_path)  # ModelCheckpoint's periodic save at step 4 is left alone
    assert checkpoint["global_step"] == 4
    assert_same_state(checkpoint["state_dict"], module.states[4][0])


@pytest.mark.parametrize("args,message", [
    ({"action": "explode"}, "explosion.action must be one of stop, skip_step, warn, got 'explode'"),
    ({"spike_factor": 1.0}, "explosion.spike_factor must be a finite number > 1, got 1.0"),
    ({"window": True}, "explosion.window must be an integer >= 1, got True"),  # YAML's true is no count
    ({"max_skips": False}, "explosion.max_skips must be an integer >= 0, got False"),
    ({"action": "skip_step", "sync_every": 4}, "explosion.action=skip_step needs sync_every=1"),
    ({"spike_action": "skip_step", "sync_every": 2}, "explosion.spike_action=skip_step needs sync_every=1 (a step "
     "can only be skipped if its flags are read before its update), got sync_every=2"),
    ({"spike_action": "explode"}, "explosion.spike_action must be one of stop, skip_step, warn, got 'explode'"),
    ({"spike_quantile": 0.0}, "explosion.spike_quantile must be a number in (0, 1], got 0.0"),
    ({"warmup_steps": -1}, "explosion.warmup_steps must be an integer >= 0, got -1"),
    ({"spike_patience": 0}, "explosion.spike_patience must be an integer >= 1, got 0"),
    ({"vanish_threshold": -1.0}, "explosion.vanish_threshold must be a finite number >= 0 or null, got -1.0"),
    ({"vanish_patience": 0}, "explosion.vanish_patience must be an integer >= 1, got 0"),
    ({"sync_every": 0}, "explosion.sync_every must be an integer >= 1 or null, got 0"),
    ({"grad_norm_every_n_steps": 0}, "explosion.grad_norm_every_n_steps must be an integer >= 1 or null, got 0"),
])
def test_bad_arguments_are_one_clear_error(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ExplosionDetector(**args)


def test_a_spike_warns_by_default_and_training_goes_on(tmp_path):
    module = Planted({12: "spike"}, optimizer="sgd", lr=0.0001)
    summary, explosion, _ = fit(tmp_path, module, max_steps=20)
    assert summary["status"] == "completed" and max(module.states) == 19
    assert explosion["trigger"] == "spike" and explosion["step"] == 12 and explosion["action"] == "warn"
    assert not explosion["stopped"] and summary["explosion"]["events"] == 1


def test_an_early_outlier_does_not_hide_a_later_spike_from_the_running_reference(tmp_path):
    """An outlier inside the window inflates a mean (10 × the mean is above the later spike) but not
    the running reference, a quantile (default 0.9, the lower one: one outlier in 8 steps stays
    above it): the later spike is still caught at its step."""
    window = 8
    module = Planted({3: "big_spike", 9: "spike"}, optimizer="sgd", lr=0.0001)
    summary, explosion, rows = fit(tmp_path, module, max_steps=12, window=window)
    fired = sorted(int(float(r["explosion/step"])) for r in rows if r.get("explosion/step"))
    assert fired == [3, 9] and explosion["events"] == 2
    history = [module.norms[s] for s in range(9 - window, 9)]
    assert 3 in range(9 - window, 9) and module.norms[9] < 10 * statistics.mean(history)  # a mean would miss
    assert module.norms[9] > 10 * sorted(history)[int(0.9 * (window - 1))]  # numpy's "lower" 0.9 quantile


@pytest.mark.parametrize("spike_step,detected", [(5, True), (4, False)])
def test_a_spike_exactly_at_the_warm_up_boundary(tmp_path, spike_step, detected):
    """warmup_steps=5: steps 0-4 are only observed; a spike at step 5 is the first one checked."""
    module = Planted({spike_step: "spike"}, optimizer="sgd", lr=0.001)
    summary, explosion, _ = fit(tmp_path, module, max_steps=10, warmup_steps=5, spike_action="stop")
    if detected:
        assert summary["status"] == "exploded" and explosion["step"] == 5 and explosion["trigger"] == "spike"
    else:
        assert summary["status"] == "completed" and explosion is None


@pytest.mark.parametrize("spikes,expected_step", [((10, 11), None), ((10, 11, 12), 12)])
def test_spike_patience_needs_that_many_steps_in_a_row(tmp_path, spikes, expected_step):
    module = Planted({s: "spike" for s in spikes}, optimizer="sgd", lr=0.001)
    summary, explosion, _ = fit(tmp_path, module, max_steps=16, spike_patience=3, spike_action="stop")
    assert (explosion["step"] if explosion else None) == expected_step


def test_warn_on_a_nan_still_ends_exploded_by_the_final_check(tmp_path):
    """`action: warn` lets the NaN update through; the final check before `completed` catches the NaN
    weights, and the record keeps the first warning."""
    module = Planted({6: "nan_loss"})
    summary, explosion, _ = fit(tmp_path, module, max_steps=10, action="warn")
    assert max(module.states) == 9  # warn: trained on
    assert summary["status"] == "exploded" and explosion["stopped"]
    assert explosion["trigger"] in ("nonfinite_weights", "nan_loss") and explosion["step"] == 10
    assert explosion["first_event"]["step"] == 6 and explosion["first_event"]["action"] == "warn"


def test_an_infinite_weight_after_the_last_update_ends_exploded(tmp_path):
    """Finite losses and gradients all along, then the last update leaves an infinite weight: no
    per-step check can see it, the final check does."""
    module = Planted({9: "inf_weight"})
    summary, explosion, _ = fit(tmp_path, module, max_steps=10)
    assert summary["status"] == "exploded" and explosion["trigger"] == "nonfinite_weights"
    assert explosion["step"] == 10 and explosion["events"] == 1 and explosion["checkpoint"] is None


@pytest.mark.parametrize("action", ["warn", "skip_step"])
def test_a_nan_last_loss_with_finite_weights_never_ends_completed(tmp_path, action):
    """The last step's loss is NaN while its gradient, and so every weight, stays finite: only the loss
    tells, and the final check must still end the run exploded, naming the loss."""
    last = 9
    module = Planted({last: "nan_constant"})
    summary, explosion, _ = fit(tmp_path, module, max_steps=last + 1, action=action)
    assert max(module.states) == last and math.isfinite(module.norms[last])  # the planted step ran, finite grad
    assert all(torch.isfinite(t).all() for t in module.state_dict().values() if t.is_floating_point())
    assert summary["status"] == "exploded" and summary["test_acc"] is None
    assert explosion["trigger"] == "nan_loss" and explosion["stopped"] and explosion["step"] == last + 1


@pytest.mark.parametrize("zero_steps,vanish_step", [
    ((2, 3, 4, 6, 7, 8, 10, 11, 12), None),  # 9 zero-gradient steps, never 4 in a row
    ((2, 3, 4, 5), 5),  # 4 in a row: the event is the fourth
])
def test_vanish_counts_only_consecutive_low_gradient_steps(tmp_path, zero_steps, vanish_step):
    module = Planted({s: "zero" for s in zero_steps})
    summary, _, rows = fit(tmp_path, module, max_steps=14, vanish_threshold=1e-6, vanish_patience=4)
    low = [s for s, norm in sorted(module.norms.items()) if norm < 1e-6]  # torch's norm of each step's gradient
    assert low == list(zero_steps)
    vanished = [int(float(r["explosion/step"])) for r in rows if r.get("explosion/kind") == "4"]
    assert vanished == ([vanish_step] if vanish_step is not None else []) and summary["status"] == "completed"
