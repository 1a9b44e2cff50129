"""The probes do not change the training, and the CLI preset puts their values in metrics.csv.

A short real fit of `ImageClassifier` (small CNN with GNPlus, whose BN parts keep running
statistics; Adam, whose state the `update` direction steps) with the landscape and Hessian probes
ends bit-identical (weights, BN buffers, optimizer state, RNG) to the same fit without them, on CPU
with deterministic algorithms. Two epochs, so a consumed RNG would also reshuffle the second one.
The same holds for the activation statistics, whose numbers a landscape probe measuring at the same
steps leaves as they are (its forwards are not measured).
"""
import csv

import torch
import yaml
from pytorch_lightning import Trainer, seed_everything

from callbacks.activation_stats import ActivationStatistics
from callbacks.hessian import HessianTopEigen
from callbacks.landscape import LandscapeProbe
from datamodules import FashionMNISTDataModule
from lightning_app.command import main
from models.classifier import ImageClassifier
from tests.callbacks.probe_models import MetricsCapture, assert_equal_nested
from tests.helpers import ROOT

DESIGN_KEYS = ["landscape/loss_min", "landscape/loss_max", "landscape/grad_pred_min",
               "landscape/grad_pred_max", "landscape/beta_eff"]


def train(data_dir, callbacks):
    seed_everything(0)
    model = ImageClassifier(backbone="small_cnn", norm="gn_plus_gn_first", norm_groups=4, in_channels=1,
                            image_size=28, optimizer="adam", lr=0.003, schedule="onecycle")
    data = FashionMNISTDataModule(data_dir=str(data_dir), batch_size=32, val_split=64, download=False)
    capture = MetricsCapture()
    trainer = Trainer(accelerator="cpu", devices=1, max_epochs=2, deterministic=True, callbacks=callbacks,
                      logger=[capture], enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, limit_val_batches=0, log_every_n_steps=1000)
    trainer.fit(model, data)
    return model, trainer.optimizers[0], capture, torch.get_rng_state()


def test_fit_with_probes_is_bit_identical_to_fit_without(fake_mnist_dir):
    probes = [LandscapeProbe(every_n_steps=4, step_sizes=[0.1, 0.4], direction="update"),
              HessianTopEigen(every_n_steps=5, iterations=3)]
    plain_model, plain_optimizer, _, plain_rng = train(fake_mnist_dir, [])
    probed_model, probed_optimizer, capture, probed_rng = train(fake_mnist_dir, probes)
    assert sorted(capture.with_prefix("landscape/")) == [0, 4, 8]  # 6 steps per epoch
    assert sorted(capture.with_prefix("hessian/")) == [0, 5, 10]
    assert all(torch.isfinite(torch.tensor(list(row.values()))).all() for row in capture.rows.values())
    plain, probed = plain_model.state_dict(), probed_model.state_dict()
    assert any(".bn.running_var" in k for k in plain)  # the GNPlus BN parts are compared too
    assert plain.keys() == probed.keys()
    for key in plain:
        assert torch.equal(plain[key], probed[key]), key
    assert_equal_nested(plain_optimizer.state_dict(), probed_optimizer.state_dict())
    assert torch.equal(plain_rng, probed_rng)


def test_fit_with_activation_statistics_is_bit_identical_to_fit_without(fake_mnist_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no logger with a directory: the histograms go to the Trainer's root, the cwd
    plain_model, plain_optimizer, _, plain_rng = train(fake_mnist_dir, [])
    stats = lambda: ActivationStatistics(every_n_steps=4, channels=[0, 3])  # noqa: E731
    measured_model, measured_optimizer, capture, measured_rng = train(fake_mnist_dir, [stats()])
    _, _, with_probe, _ = train(fake_mnist_dir, [stats(), LandscapeProbe(every_n_steps=4, step_sizes=[0.4])])
    assert sorted(capture.with_prefix("activation/")) == [0, 4, 8]
    assert capture.with_prefix("activation/") == with_probe.with_prefix("activation/")
    plain, measured = plain_model.state_dict(), measured_model.state_dict()
    assert plain.keys() == measured.keys()
    for key in plain:
        assert torch.equal(plain[key], measured[key]), key
    assert_equal_nested(plain_optimizer.state_dict(), measured_optimizer.state_dict())
    assert torch.equal(plain_rng, measured_rng)


def test_preset_writes_the_design_keys_to_metrics_csv(fake_mnist_dir, tmp_path):
    main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"),
          "--config", str(ROOT / "configs/presets/landscape.yaml"),
          "--landscape.every_n_steps", "4", "--hessian", "callbacks.hessian.HessianTopEigen",
          "--hessian.every_n_steps", "5", "--hessian.iterations", "2",
          "--data.init_args.data_dir", str(fake_mnist_dir), "--data.init_args.val_split", "64",
          "--data.init_args.batch_size", "32", "--data.init_args.download", "false",
          "--trainer.max_epochs", "2", "--trainer.default_root_dir", str(tmp_path),
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
          "--trainer.log_every_n_steps", "3", "--test_after_fit", "false"])
    (run_dir,) = [p for p in tmp_path.glob("*/*") if p.is_dir()]
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    per_eta = [f"landscape/{kind}@{eta}" for eta in ("0.05", "0.1", "0.2", "0.3", "0.4")
               for kind in ("loss", "grad_pred")]
    for key, steps in [(k, {0, 4, 8}) for k in DESIGN_KEYS + per_eta] + [("hessian/top_eig", {0, 5, 10})]:
        assert {int(r["step"]) for r in rows if r.get(key)} == steps, key
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["landscape"]["init_args"]["exclude_norm_params"] is False
    assert config["landscape"]["init_args"]["step_sizes"] == [0.05, 0.1, 0.2, 0.3, 0.4]
