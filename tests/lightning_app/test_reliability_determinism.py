"""`seed_everything` + `trainer.deterministic: true` gives identical results across runs on the CPU.

Two runs of the same command (GNPlus, so both the GN and the BN code paths are exercised) must log
identical `metrics.csv` values and end with identical tensors; a run with another seed must not
(otherwise the comparison could not fail).
"""
import csv

import torch

from lightning_app.command import main
from tests.helpers import run_dirs, tiny_args


def run(data_dir, root, seed):
    main(tiny_args(data_dir, root, "--data", "datamodules.MNISTDataModule", "--model.norm", "gn_plus_bn_first",
                   "--trainer.max_epochs", "1", "--trainer.deterministic", "true", "--seed_everything", str(seed),
                   "--trainer.log_every_n_steps", "1"))
    (run_dir,) = run_dirs(root)
    with open(run_dir / "metrics.csv", newline="") as f:
        metrics = [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]
    weights = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)["state_dict"]
    return metrics, weights


def test_same_seed_same_metrics_and_weights(fake_mnist_dir, tmp_path):
    first, first_weights = run(fake_mnist_dir, tmp_path / "a", 0)
    second, second_weights = run(fake_mnist_dir, tmp_path / "b", 0)
    other, other_weights = run(fake_mnist_dir, tmp_path / "c", 1)
    assert len(first) >= 7 and {"train/loss", "val/acc", "test/acc"} <= set().union(*first)
    assert first == second
    assert first_weights.keys() == second_weights.keys()
    assert all(torch.equal(first_weights[k], second_weights[k]) for k in first_weights)
    assert first != other and not all(torch.equal(first_weights[k], other_weights[k]) for k in first_weights)
