"""What a LightningCLI user writes, and what normlab did with it: a user's own ExplosionDetector under
`trainer.callbacks` replaces the automatic one (no "more than one stateful callback" crash); fp16 AMP on
a CPU, which Lightning runs as bf16, is recorded as what ran; a sweep prints no LightningCLI warning about
its own `args`; a `class_path` outside normlab, Lightning, torch and this repository is refused without
importing its module."""
import csv
import json
import sys
import warnings
from pathlib import Path

import pytest
import torch
import yaml
from pytorch_lightning import Callback

from lightning_app.command import main
from lightning_app.sweep.command import main as sweep_main
from tests.helpers import error_line, run_dirs, tiny_args
from tests.lightning_app.readme_table import assert_documented

pytestmark = pytest.mark.usefixtures("run_from_repo_root")


class WritesItsStepCount(Callback):
    """A user's callback from a module of this repository: writes the steps trained into the run directory."""

    def on_train_end(self, trainer, pl_module):
        (Path(trainer.log_dir) / "steps_seen.txt").write_text(str(trainer.global_step))


def test_a_users_explosion_detector_under_trainer_callbacks_replaces_the_automatic_one(fake_mnist_dir, tmp_path):
    config = tmp_path / "mine.yaml"
    config.write_text("trainer:\n  callbacks:\n    - class_path: callbacks.explosion.ExplosionDetector\n"
                      "      init_args: {grad_norm_every_n_steps: 1}\n")
    main(tiny_args(fake_mnist_dir, tmp_path / "runs", "--config", str(config), "--trainer.max_epochs", "1",
                   "--test_after_fit", "false"))
    (run_dir,) = run_dirs(tmp_path / "runs")
    with open(run_dir / "metrics.csv", newline="") as f:
        header = next(csv.reader(f))
    assert any(key.startswith("grad_norm/") for key in header)  # the user's settings are the ones in use
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert [key for key in checkpoint["callbacks"] if "ExplosionDetector" in key] == ["ExplosionDetector"]


def test_an_explosion_detector_under_both_the_explosion_key_and_trainer_callbacks_is_refused(fake_mnist_dir, tmp_path,
                                                                                            capsys):
    root = tmp_path / "runs"
    message = error_line(capsys, lambda: main(tiny_args(
        fake_mnist_dir, root, "--config", "configs/presets/explosion.yaml", "--trainer.callbacks+",
        "callbacks.explosion.ExplosionDetector")))
    assert_documented("two explosion detectors", message)
    assert not root.exists()


def test_fp16_amp_on_a_cpu_is_recorded_as_the_bf16_that_ran(fake_mnist_dir, tmp_path, capsys):
    main(tiny_args(fake_mnist_dir, tmp_path / "runs", "--trainer.precision", "16-mixed", "--trainer.accelerator",
                   "cpu", "--trainer.max_epochs", "1", "--test_after_fit", "false",
                   "--trainer.limit_train_batches", "2", "--trainer.limit_val_batches", "1"))
    (run_dir,) = run_dirs(tmp_path / "runs")
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]["precision"] == "bf16-mixed"
    assert "normlab: trainer.precision=16-mixed runs as bf16-mixed on the CPU" in capsys.readouterr().err


def test_a_sweep_prints_no_lightningcli_args_warning(tmp_path, monkeypatch, capsys):
    from tests.lightning_app.sweep.test_sweep_launchers import make_sweep

    sweep = make_sweep(tmp_path, "  model.norm: [bn, gn, none]\n")
    monkeypatch.setattr(sys, "argv", ["lightning", "sweep", "--config", str(sweep), "--dry-run"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(SystemExit) as info:
            sweep_main(sys.argv[2:])
    assert info.value.code == 0
    assert not [w for w in caught if "args parameter" in str(w.message)]
    assert "args parameter" not in capsys.readouterr().err


@pytest.mark.parametrize("key", ["--data", "--trainer.callbacks+", "--landscape"])
def test_a_class_path_outside_the_allowed_packages_is_refused_without_importing_it(fake_mnist_dir, tmp_path,
                                                                                  monkeypatch, capsys, key):
    marker = tmp_path / "IMPORTED"
    (tmp_path / "side_effect_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass NotOne:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    root = tmp_path / "runs"
    message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root, key, "side_effect_module.NotOne")))
    assert "class_path 'side_effect_module.NotOne' is outside the packages a config may import" in message
    assert_documented("a `class_path` outside normlab, Lightning, torch and this repository", message)
    assert not marker.exists() and "side_effect_module" not in sys.modules
    assert not root.exists()


def test_a_class_path_in_this_repository_is_still_allowed(fake_mnist_dir, tmp_path):
    """The project's own helpers (here a test callback) and its packages import as before."""
    main(tiny_args(fake_mnist_dir, tmp_path / "runs", "--trainer.max_epochs", "1", "--test_after_fit", "false",
                   "--trainer.callbacks+",
                   "tests.lightning_app.test_cli_surprises.WritesItsStepCount"))
    (run_dir,) = run_dirs(tmp_path / "runs")
    steps = json.loads((run_dir / "summary.json").read_text())["steps"]
    assert steps > 0 and (run_dir / "steps_seen.txt").read_text() == str(steps)
