"""`lightning fit` with a CIFAR backbone and a GNPlus norm on generated data, end to end.

ResNet-18 with gn_plus_gn_first, G = 32, on 28×28 grey MNIST-format files: the run must complete, and
its checkpoint must hold that network (one λ per norm layer: 20 in ResNet-18).
"""
import json

import pytest
import torch

from lightning_app.command import main
from tests.helpers import run_dirs, tiny_args
from tests.models.backbone_probe import one_thread  # noqa: F401


@pytest.mark.usefixtures("one_thread")
def test_fit_resnet18_gn_plus_gn_first(fake_mnist_dir, tmp_path):
    root = tmp_path / "runs"
    main(tiny_args(fake_mnist_dir, root, "--model.backbone", "resnet18", "--model.norm", "gn_plus_gn_first",
                   "--model.norm_groups", "32", "--trainer.max_epochs", "1",
                   "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1",
                   "--trainer.limit_test_batches", "1", "--data.init_args.batch_size", "8"))
    (run_dir,) = run_dirs(root)
    assert "_resnet18_gn_plus_gn_first_g32_" in run_dir.name
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 2 and 0.0 <= summary["test_acc"] <= 1.0
    checkpoint = torch.load(run_dir / "checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    state = checkpoint["state_dict"]
    assert sum(key.endswith(".lambda_") for key in state) == 20
    assert state["net.head.2.weight"].shape == (10, 512)
