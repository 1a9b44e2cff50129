"""A new norm is one module and one registry entry: a norm that exists only under tests/
(`tests/models/throwaway_norm.py`), put into the registry here, trains end to end through
`lightning fit` (its run name, the start-up checks, the parameter groups) and shows in `lightning report`,
with no other file of the project knowing it."""
import json

import pytest
import torch

from lightning_app.command import main
from models.backbones import build_backbone
from models.classifier import ImageClassifier
from models.norms.registry import NORMS
from models.optim import parameter_groups
from tests.helpers import error_line, run_dirs, tiny_args
from tests.models import throwaway_norm

NAME = "group_rms"


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setitem(NORMS, NAME, throwaway_norm.ENTRY)


def test_the_new_norm_trains_end_to_end_and_is_reported(registered, fake_mnist_dir, tmp_path, capsys):
    root = tmp_path / "runs"
    main(tiny_args(fake_mnist_dir, root, "--model.norm", NAME, "--model.norm_groups", "4"))
    (run_dir,) = run_dirs(root)
    # grouped=True in the entry: the run name shows the group count, as for gn
    assert run_dir.name.startswith(f"fashion_mnist_small_cnn_{NAME}_g4_bs32_lr0.003_s0_")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 12 and 0 <= summary["test_acc"] <= 1
    model = ImageClassifier("small_cnn", NAME, norm_groups=4, in_channels=1, image_size=28)
    layers = [m for m in model.modules() if isinstance(m, throwaway_norm.GroupRMSNorm)]
    assert len(layers) == 2 and all(torch.isfinite(p).all() for p in model.parameters())
    # module_types in the entry: its γ, β train in the norm group (no weight decay by default)
    groups = {g["name"]: {id(p) for p in g["params"]} for g in parameter_groups(model.net, 1e-4, False, 1.0, 0.1)}
    assert {id(layers[0].weight), id(layers[0].bias)} <= groups["norm"]

    capsys.readouterr()
    main(["report", str(root), "--out", str(tmp_path / "report")])
    report = (tmp_path / "report" / "report.md").read_text().splitlines()
    header = report.index(f"| Batch size | {NAME} |")  # the registry's names are the table's columns
    assert report[header + 2].startswith("| 32 | ") and report[header + 2] != "| 32 |  |"


def test_the_new_norm_gets_the_start_up_checks(registered, fake_mnist_dir, tmp_path, capsys):
    # options in the entry: a value out of range is the CLI's one line
    assert error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, tmp_path, "--model.norm", NAME,
                                                      "--model.norm_options", '{"eps": -1}'))) \
        == f"norm {NAME!r}: eps must be a finite number > 0, got -1"
    assert error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, tmp_path, "--model.norm", NAME,
                                                      "--model.norm_options", '{"momentum": 0.1}'))) \
        == f"norm {NAME!r} got unknown option(s) ['momentum']; allowed: ['eps', 'noise_mean', 'noise_std', " \
           "'noise_granularity']"
    assert not run_dirs(tmp_path)
    # statistics in the entry: one channel per group (512 groups, fewer where the width is smaller) on resnet18's
    # 1×1 maps (8-pixel images) is refused
    with pytest.raises(ValueError, match=rf"^norm '{NAME}' at stages\.3\.0\.norm1: its training statistic per sample "
                                         r"over 1 channel\(s\) × H×W covers 1 value of its 512×1×1 input"):
        build_backbone("resnet18", 10, 3, NAME, norm_groups=512, image_size=8,
                       backbone_options={"norm_groups_policy": "clamp"})
    # batch_statistics=False in the entry: a batch of one image per device is accepted, and listed as such
    ImageClassifier("small_cnn", NAME, norm_groups=4, in_channels=1, image_size=28).check_batch_size(1, "x")
    with pytest.raises(ValueError, match=rf"trains on one image: none, gn, ln, in, {NAME}$"):
        ImageClassifier("small_cnn", "bn", in_channels=1, image_size=28).check_batch_size(1, "data.batch_size=1")
