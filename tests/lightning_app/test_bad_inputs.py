"""Every row of the README's bad-input table: one `normlab: error:` line naming the value and what is
allowed, exit code 2, no traceback, and not one byte changed under the runs root.

Each row runs `lightning fit` in process against the directory of an interrupted run (`victim`:
summary.json says running and `last.ckpt` exists, as a SIGKILL leaves it), so that a check that
came too late would show up as a resumed or rewritten run. A completed run of another architecture
(`finished`, GroupNorm instead of BatchNorm) supplies the completed-run and wrong-checkpoint rows.
Two rows also run as real subprocesses, where jsonargparse reads sys.argv itself.
"""
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lightning_app.command import main
from tests.fakedata import write_fake_mnist, write_idx
from tests.lightning_app.hostile_files import overwrite_tensor_bytes, write_malicious_checkpoint
from tests.lightning_app.readme_table import assert_documented, bad_input_table
from tests.helpers import ERROR_PREFIX, ROOT, error_line, snapshot, tiny_args


def fit_args(data_dir, root, run_name="victim", *extra):
    return tiny_args(data_dir, root, "--data", "datamodules.MNISTDataModule", "--model.norm", "bn",
                     "--experiment", "exp", "--run_name", run_name, "--trainer.max_epochs", "1", "--test_after_fit", "false", *extra)


def write_bad_data(folder: Path, fault: str) -> Path:
    """MNIST files with one broken training-image file, as a failed download or a disk fault leaves it."""
    write_fake_mnist(folder, compress=fault != "truncated_raw")
    stem = folder / "train-images-idx3-ubyte"
    gz = Path(f"{stem}.gz")
    if fault == "missing":
        gz.unlink()
    elif fault == "truncated_raw":
        stem.write_bytes(stem.read_bytes()[:-100])
    elif fault == "truncated_gz":
        gz.write_bytes(gz.read_bytes()[: len(gz.read_bytes()) // 2])
    elif fault == "not_idx":
        gz.write_bytes(gzip.compress(b"<html>404 Not Found</html>"))
    elif fault == "not_gzip":
        gz.write_bytes(b"<html>404 Not Found</html>")
    elif fault == "wrong_shape":  # a valid IDX file of 32×32 images (CIFAR-sized) where 28×28 belong
        write_idx(stem, np.zeros((256, 32, 32), np.uint8))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """(base, data, root): an interrupted run `victim` (BN) and a completed run `finished` (GN) under root."""
    base = tmp_path_factory.mktemp("bad_inputs")
    data = base / "mnist"
    write_fake_mnist(data)
    root = base / "runs"
    main(fit_args(data, root, "finished", "--model.norm", "gn"))
    main(fit_args(data, root, "victim"))
    victim = root / "exp" / "victim"
    summary = json.loads((victim / "summary.json").read_text())
    (victim / "summary.json").write_text(json.dumps({**summary, "status": "running"}))  # as a SIGKILL leaves it
    for fault in ("missing", "truncated_raw", "truncated_gz", "not_idx", "not_gzip", "wrong_shape"):
        write_bad_data(base / fault, fault)
    (base / "broken.yaml").write_text("model:\n  norm: gn\n  lr: [0.1\n")
    (base / "typo.yaml").write_text("model:\n  nrom: gn\n")
    shutil.copy(root / "exp" / "finished" / "checkpoints" / "last.ckpt", base / "gn.ckpt")  # outside any run
    whole = (victim / "checkpoints" / "last.ckpt").read_bytes()
    (base / "half.ckpt").write_bytes(whole[: len(whole) // 2])
    write_malicious_checkpoint(base / "evil.ckpt", base / "PWNED", like=victim / "checkpoints" / "last.ckpt")
    (base / "nan.ckpt").write_bytes(whole)
    overwrite_tensor_bytes(base / "nan.ckpt", "net.features.0.weight")
    (base / "duplicate.yaml").write_text("model:\n  norm: bn\n  lr: 0.01\nmodel:\n  norm: gn\n")
    return base, data, root


ACTIVATIONS = ["--config", str(ROOT / "configs/presets/activations.yaml")]
# (row id, extra arguments, substrings of the one error line); "{base}" is the fixture's folder.
ROWS = [
    ("unknown backbone", ["--model.backbone", "resnet99"], ["unknown backbone 'resnet99'", "allowed:", "small_cnn"]),
    ("unknown norm", ["--model.norm", "batchnorm"], ["unknown norm 'batchnorm'", "allowed:", "gn"]),
    ("unknown data set", ["--data", "datamodules.CIFAR11DataModule"],
     ["'datamodules.CIFAR11DataModule'", "allowed:", "datamodules.MNISTDataModule"]),
    ("unknown optimizer", ["--model.optimizer", "sgdd"],
     ["model.optimizer: got 'sgdd', expected one of 'sgd', 'adam', 'adamw'"]),
    ("groups do not divide channels", ["--model.norm", "gn", "--model.norm_groups", "5"], ["groups=5", "16", "allowed"]),
    ("batch size 0", ["--data.init_args.batch_size", "0"], ["data.batch_size", "got 0", ">= 1"]),
    ("batch size < 0", ["--data.init_args.batch_size", "-8"], ["data.batch_size", "got -8", ">= 1"]),
    ("batch size not an integer", ["--data.init_args.batch_size", "2.5"],
     ["data.init_args.batch_size: got '2.5', expected int"]),
    ("batch not divisible by devices", ["--trainer.accelerator", "cpu", "--trainer.devices", "3"],
     ["data.batch_size=32 is not divisible by the 3 devices", "multiple of 3"]),
    ("batch 1 with BN", ["--data.init_args.batch_size", "1"],
     ["data.batch_size=1 leaves 1 image per device", "model.norm='bn'", "gn"]),
    ("batch 1 with GNPlus (has a BN part)", ["--data.init_args.batch_size", "1", "--model.norm", "gn_plus_parallel"],
     ["model.norm='gn_plus_parallel'"]),
    ("lr 0", ["--model.lr", "0"], ["model.lr must be a finite number > 0, got 0"]),
    ("lr < 0", ["--model.lr", "-0.1"], ["model.lr must be a finite number > 0, got -0.1"]),
    ("lr NaN (YAML .nan)", ["--model.lr", ".nan"], ["model.lr must be a finite number > 0, got nan"]),
    ("lr NaN (text)", ["--model.lr", "nan"], ["model.lr: got 'nan', expected float"]),
    ("YAML syntax error", ["--config", "{base}/broken.yaml"], ["{base}/broken.yaml: YAML syntax error at line 4, column 1"]),
    ("unknown key in YAML", ["--config", "{base}/typo.yaml"],
     ["unknown config key 'model.nrom'; did you mean 'model.norm'?"]),
    ("unknown key on the command line", ["--trainer.max_epohcs", "3"],
     ["unknown config key 'trainer.max_epohcs'; did you mean 'trainer.max_epochs'?"]),
    ("a value without its key", ["--trainer.max_epochs", "1", "2"],
     ["unexpected argument '2'; options are written --key value (see --help)"]),
    ("unknown data option", ["--data.init_args.batch_sise", "3"],
     ["unknown config key 'data.init_args.batch_sise'; did you mean 'data.init_args.batch_size'?"]),
    ("bad type", ["--trainer.max_epochs", "x"], ["trainer.max_epochs: got 'x', expected int or null"]),
    ("val_split out of range", ["--data.init_args.val_split", "2.0"], ["data.val_split", "got 2.0"]),
    ("missing config file", ["--config", "{base}/nowhere.yaml"], ["config file {base}/nowhere.yaml does not exist"]),
    ("data dir: missing file", ["--data.init_args.data_dir", "{base}/missing"],
     ["train-images-idx3-ubyte", "{base}/missing"]),
    ("data dir: truncated file", ["--data.init_args.data_dir", "{base}/truncated_raw"],
     ["{base}/truncated_raw/train-images-idx3-ubyte", "truncated or corrupt"]),
    ("data dir: truncated .gz", ["--data.init_args.data_dir", "{base}/truncated_gz"],
     ["{base}/truncated_gz/train-images-idx3-ubyte.gz", "truncated or corrupt"]),
    ("data dir: not an IDX file", ["--data.init_args.data_dir", "{base}/not_idx"],
     ["{base}/not_idx/train-images-idx3-ubyte.gz", "not an IDX file"]),
    ("data dir: .gz that is not gzip", ["--data.init_args.data_dir", "{base}/not_gzip"],
     ["{base}/not_gzip/train-images-idx3-ubyte.gz", "truncated or corrupt"]),
    ("data dir: wrong image size", ["--data.init_args.data_dir", "{base}/wrong_shape"],
     ["{base}/wrong_shape/train-images-idx3-ubyte", "28"]),
    ("checkpoint does not exist", ["--ckpt_path", "{base}/none.ckpt"], ["checkpoint {base}/none.ckpt does not exist"]),
    ("truncated checkpoint", ["--ckpt_path", "{base}/half.ckpt"], ["checkpoint {base}/half.ckpt is truncated or corrupt"]),
    ("checkpoint from another architecture", ["--ckpt_path", "{base}/gn.ckpt"],
     ["{base}/gn.ckpt was saved from another architecture", "model.norm: checkpoint 'gn', config 'bn'"]),
    ("checkpoint of a run of other science", ["--model.norm", "gn", "--model.lr", "0.01", "--ckpt_path",
                                              "{base}/runs/exp/finished/checkpoints/last.ckpt"],
     ["finished/checkpoints/last.ckpt comes from the run {base}/runs/exp/finished, whose science differs",
      "model.lr: 0.003 -> 0.01"]),
    ("run named by hand holds other science", ["--model.lr", "0.01"],
     ["run_name='victim' names a run of other science (model.lr: 0.003 -> 0.01)"]),
    ("norm option out of range", ["--model.norm", "gn_plus_parallel", "--model.norm_options", '{{"eps": -1}}'],
     ["norm 'gn_plus_parallel': eps must be a finite number > 0, got -1"]),
    ("norm momentum out of range", ["--model.norm_options", '{{"momentum": 2}}'],
     ["norm 'bn': momentum must be a number in [0, 1]", "got 2"]),
    ("model option out of range", ["--model.momentum", "1.5"], ["model.momentum must be a number in [0, 1), got 1.5"]),
    ("data option out of range", ["--data.init_args.num_workers", "-1"], ["data.num_workers", "got -1", ">= 0"]),
    ("bgn groups do not divide C·H·W", ["--model.norm", "bgn", "--model.norm_groups", "3"],
     ["norm 'bgn' at features.1: norm_groups=3 does not divide", "16·28·28", "allowed group counts"]),
    ("activation statistics: unknown layer", [*ACTIVATIONS, "--activation_stats.layers", "[net.features.1, net.nope]"],
     ["activation_stats.layers: no norm layer 'net.nope' in the model; available: net.features.1, net.features.5"]),
    ("activation statistics: channel out of range", [*ACTIVATIONS, "--activation_stats.channels", "[0, 16]"],
     ["activation_stats.channels: layer net.features.1 has 16 channels (0..15), got channel 16"]),
    ("activation statistics with a compiled network", [*ACTIVATIONS, "--model.compile", "true"],
     ["activation_stats: model.compile=true runs the network through torch.compile"]),
    ("activation statistics: every_n_steps 0", [*ACTIVATIONS, "--activation_stats.every_n_steps", "0"],
     ["activation_stats.every_n_steps must be an integer >= 1, got 0"]),
    ("checkpoint that runs code", ["--ckpt_path", "{base}/evil.ckpt"],
     ["checkpoint {base}/evil.ckpt holds posix.system", "refusing to load it"]),
    ("checkpoint with a NaN weight", ["--ckpt_path", "{base}/nan.ckpt"],
     ["checkpoint {base}/nan.ckpt holds non-finite values in net.features.0.weight"]),
    ("duplicate key in a YAML file", ["--config", "{base}/duplicate.yaml"],
     ["{base}/duplicate.yaml: duplicate key 'model' at lines 1 and 4"]),
    ("name with a control character", ["--run_name", "a\nb"], ["run_name='a\\nb' holds a control character"]),
    ("name longer than the file system allows", ["--experiment", "λ" * 200],
     ["is 400 bytes in UTF-8", "at most 255 bytes"]),
]


# The README table's row each of these inputs is the example of (the others are variants of a row).
README_ROWS = {
    "unknown backbone": "unknown backbone", "unknown norm": "unknown norm", "unknown data set": "unknown data set",
    "unknown optimizer": "unknown optimizer", "groups do not divide channels": "groups do not divide channels",
    "batch size < 0": "batch size 0 / < 0", "batch size not an integer": "batch size not an integer",
    "batch not divisible by devices": "batch not divisible by the devices",
    "batch 1 with BN": "batch of 1 with a BN-type norm (bn, gn_plus_*, gn_then_bn, bgn, gbgn)",
    "lr < 0": "lr ≤ 0", "lr NaN (YAML .nan)": "lr NaN", "lr NaN (text)": "lr NaN",
    "YAML syntax error": "YAML syntax error", "unknown key in YAML": "unknown key in a YAML file",
    "unknown key on the command line": "unknown key on the command line",
    "unknown data option": "unknown data option", "bad type": "value of the wrong type",
    "a value without its key": "a word that is no option",
    "val_split out of range": "val_split out of range", "missing config file": "missing config file",
    "data dir: missing file": "data dir: missing file", "data dir: truncated file": "data dir: truncated file",
    "data dir: truncated .gz": "data dir: truncated `.gz`", "data dir: not an IDX file": "data dir: not an IDX file",
    "data dir: .gz that is not gzip": "data dir: `.gz` that is not gzip",
    "data dir: wrong image size": "data dir: wrong image size",
    "checkpoint does not exist": "checkpoint does not exist",
    "truncated checkpoint": "truncated checkpoint (argument or the run's `last.ckpt`)",
    "checkpoint from another architecture": "checkpoint from another architecture",
    "norm option out of range": "norm option out of range (eps, momentum, ...)",
    "model option out of range": "model option out of range",
    "bgn groups do not divide C·H·W": "bgn groups do not divide a layer's C·H·W",
    "run named by hand holds other science": "a run named by hand holds other science",
    "checkpoint that runs code": "checkpoint that needs more than tensors and plain values (a pickle that could run code)",
    "checkpoint with a NaN weight": "checkpoint with non-finite weights or buffers (argument or the run's own)",
    "duplicate key in a YAML file": "duplicate key in a YAML file (config or sweep)",
    "name with a control character": "a name with a control character (newline, tab, escape, ...)",
    "name longer than the file system allows": "a name longer than the file system allows",
}
# README rows whose messages the run-directory tests (test_run_contract.py, test_run_records.py,
# test_run_processes.py) check by substring only, not yet against the README's text.
CHECKED_BY_SUBSTRING_ELSEWHERE = {
    "a name that is not one directory name", "`--overwrite` of a directory without run files",
    "`--overwrite` would delete the given checkpoint", "the run is being trained by another process",
    "checkpoint of a run of other science", "`--ckpt_path last` without a checkpoint",
    "root, experiment, run or `checkpoints` path is a file", "root not writable", "`metrics.csv` of the run is not one",
}
# README rows whose messages other test files hold to the README's text with `assert_documented`
# (test_nothing_trains_on_nothing.py, tests/datamodules/test_data_sources.py, report/test_report.py, and below).
CHECKED_AGAINST_README_ELSEWHERE = {
    "zero training steps", "batch larger than the training split (also: a val_split leaving less than a batch)",
    "last batch of one with a BN-type norm", "data dir holds only some files", "label out of range (either end)",
    "a `lightning sweep` or `lightning report` option with a bad value",
    "the report's `--out` is a file or a folder of other files",
    # test_cli_surprises.py, test_wandb_login.py, test_disk_full.py (slow tier: it mounts a small tmpfs)
    "a `class_path` outside normlab, Lightning, torch and this repository", "two explosion detectors",
    "W&B logging without offline mode and without a usable login",
    "a full disk during a run (exit 1; a read-only file system or a quota alike)",
}


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_bad_input_row(runs, capsys, row):
    base, data, root = runs
    name, extra, expected = row
    before = snapshot(root)
    message = error_line(capsys, lambda: main(fit_args(data, root, "victim", *(a.format(base=base) for a in extra))))
    for part in expected:
        assert part.format(base=base) in message, message
    if name in README_ROWS:
        assert_documented(README_ROWS[name], message)
    assert snapshot(root) == before


def test_every_readme_row_is_what_a_test_prints():
    """Every row of the README table is checked against the code's message by a test of this file."""
    checked = set(README_ROWS.values()) | {"run directory holds a completed run",
                                           "corrupt `summary.json` in the run directory"}
    assert set(bad_input_table()) == checked | CHECKED_BY_SUBSTRING_ELSEWHERE | CHECKED_AGAINST_README_ELSEWHERE


def test_completed_run_is_refused_and_untouched(runs, capsys):
    base, data, root = runs
    before = snapshot(root)
    message = error_line(capsys, lambda: main(fit_args(data, root, "finished", "--model.norm", "gn")))
    assert f"{root / 'exp' / 'finished'} already holds a completed run" in message
    assert "--overwrite true" in message
    assert_documented("run directory holds a completed run", message)
    assert snapshot(root) == before


@pytest.mark.parametrize("damage,expected", [
    ("checkpoints/last.ckpt", "checkpoints/last.ckpt is truncated or corrupt"),
    ("summary.json", "summary.json is corrupt or truncated"),
])
def test_damaged_file_in_the_run_directory_is_named(runs, tmp_path, capsys, damage, expected):
    base, data, root = runs
    copy = tmp_path / "runs"
    shutil.copytree(root / "exp" / "victim", copy / "exp" / "victim")
    target = copy / "exp" / "victim" / damage
    target.write_bytes(target.read_bytes()[: len(target.read_bytes()) // 2])
    before = snapshot(copy)
    message = error_line(capsys, lambda: main(fit_args(data, copy, "victim")))
    assert expected in message and str(target) in message
    if damage == "summary.json":
        assert_documented("corrupt `summary.json` in the run directory", message)
    assert snapshot(copy) == before


@pytest.mark.parametrize("extra,expected", [
    (["--model.nrom", "gn"], "unknown config key 'model.nrom'; did you mean 'model.norm'?"),
    (["--config", "{base}/broken.yaml"],
     "{base}/broken.yaml: YAML syntax error at line 4, column 1: expected ',' or ']', but got '<stream end>'"),
])
def test_bad_input_as_a_real_subprocess(runs, extra, expected):
    base, data, root = runs
    before = snapshot(root)
    env = {**os.environ, "WANDB_MODE": "offline", "NORMLAB_DEBUG": "", "PYTHONPATH": str(ROOT)}
    args = fit_args(data, root, "victim", *(a.format(base=base) for a in extra))
    result = subprocess.run([sys.executable, "-m", "lightning_app", *args],
                            capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.strip().splitlines() == [ERROR_PREFIX + expected.format(base=base)]
    assert snapshot(root) == before
