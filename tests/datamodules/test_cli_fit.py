"""`lightning fit` trains on every data module, from its preset in configs/datasets/, on generated files."""
import json

import pytest

from datamodules import DATAMODULES
from lightning_app.command import main
from tests.fakedata import write_fake_cifar, write_fake_mnist, write_fake_svhn
from tests.helpers import ROOT

WRITERS = {
    "cifar10": lambda d: write_fake_cifar(d, 10, n_train=80, n_test=16),
    "cifar100": lambda d: write_fake_cifar(d, 100, n_train=80, n_test=16),
    "svhn": lambda d: write_fake_svhn(d, n_train=80, n_test=16),
    "mnist": lambda d: write_fake_mnist(d, n_train=80, n_test=16),
    "fashion_mnist": lambda d: write_fake_mnist(d, n_train=80, n_test=16),
}


def test_every_registered_module_has_a_preset_and_a_writer():
    assert set(DATAMODULES) == set(WRITERS) == {p.stem for p in (ROOT / "configs/datasets").glob("*.yaml")}


@pytest.mark.parametrize("name,on_device", [("cifar10", False), ("cifar100", True), ("svhn", False),
                                            ("mnist", True), ("fashion_mnist", False)])
def test_fit_trains_on_the_module(tmp_path, name, on_device):
    WRITERS[name](tmp_path / "data")
    main(["fit", "--config", str(ROOT / "configs/quickstart.yaml"),
          "--config", str(ROOT / f"configs/datasets/{name}.yaml"),
          "--data.init_args.data_dir", str(tmp_path / "data"), "--data.init_args.download", "false",
          "--data.init_args.val_split", "16", "--data.init_args.batch_size", "16",
          "--data.init_args.on_device", str(on_device).lower(),
          "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
          "--trainer.limit_test_batches", "1", "--trainer.default_root_dir", str(tmp_path / "runs"),
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
          "--trainer.log_every_n_steps", "1"])
    (run_dir,) = [p for p in (tmp_path / "runs").glob("*/*") if p.is_dir()]
    assert run_dir.name.startswith(f"{name}_small_cnn_gn_plus_gn_first_g4_bs16_")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2 and 0 <= summary["test_acc"] <= 1
