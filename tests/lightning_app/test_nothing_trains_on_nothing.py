"""A fit that would take no training step, or train on batches smaller than asked, or end each epoch
with a batch of one image for a norm with batch statistics, is refused before its first step: one
`normlab: error:` line, exit 2, no file written under the runs root. Driven through the real CLI on
generated Fashion-MNIST-format data (256 training images).
"""
import json

import pytest

from lightning_app.command import main
from tests.lightning_app.readme_table import assert_documented
from tests.helpers import error_line, snapshot
from tests.helpers import run_dirs, tiny_args

# (row id, extra arguments, the exact error message); 256 training images, val_split 64 → 192 left.
ROWS = [
    ("max_epochs 0", ["--trainer.max_epochs", "0"],
     "trainer.max_epochs=0 trains nothing; use a value >= 1 (max_epochs and max_steps: -1 for no limit)"),
    ("max_steps 0", ["--trainer.max_steps", "0"],
     "trainer.max_steps=0 trains nothing; use a value >= 1 (max_epochs and max_steps: -1 for no limit)"),
    ("limit_train_batches 0", ["--trainer.limit_train_batches", "0"],
     "trainer.limit_train_batches=0 trains nothing; use a value >= 1 (max_epochs and max_steps: -1 for no limit)"),
    ("batch larger than the split (drop_last)", ["--data.init_args.batch_size", "256"],
     "data.batch_size=256 is larger than the training set: the training split has 192 images "
     "(data.val_split=64 held out), so no batch is complete (drop_last); use a batch of at most 192 or a "
     "smaller val_split"),
    ("val_split leaves fewer images than a batch", ["--data.init_args.val_split", "240"],
     "data.batch_size=32 is larger than the training set: the training split has 16 images "
     "(data.val_split=240 held out), so no batch is complete (drop_last); use a batch of at most 16 or a "
     "smaller val_split"),
    ("batch larger than the split (no drop_last)", ["--data.init_args.batch_size", "200",
                                                    "--data.init_args.drop_last", "false"],
     "data.batch_size=200 is larger than the training set: the training split has 192 images "
     "(data.val_split=64 held out), so every batch would be smaller than data.batch_size; use a batch of at "
     "most 192 or a smaller val_split"),
    ("last batch of one, bn", ["--model.norm", "bn", "--data.init_args.val_split", "63",
                               "--data.init_args.drop_last", "false"],
     "data.drop_last=false and the training split has 193 images (data.val_split=63 held out): every epoch "
     "ends with a batch of 1 (193 = 6·32 + 1), 1 image per device, and model.norm='bn' normalizes with batch "
     "statistics; set data.drop_last: true, or change batch_size or val_split"),
    ("last batch of one, gn_plus_gn_first with the reference arithmetic",
     ["--model.norm_options", '{"reference_arithmetic": true}', "--data.init_args.val_split", "63",
      "--data.init_args.drop_last", "false"],
     "model.norm='gn_plus_gn_first' normalizes with batch statistics"),
]


# The README's bad-input rows, each documented with the message of one of these cases.
README_ROW = {
    "max_epochs 0": "zero training steps",
    "batch larger than the split (drop_last)": "batch larger than the training split (also: a val_split leaving less than a batch)",
    "last batch of one, bn": "last batch of one with a BN-type norm",
}
QUICK = ("max_epochs 0", "batch larger than the split (drop_last)", "last batch of one, bn")  # the rest: slow


@pytest.mark.parametrize("row", [pytest.param(r, marks=() if r[0] in QUICK else pytest.mark.slow) for r in ROWS],
                         ids=[r[0] for r in ROWS])
def test_refused_before_training(fake_mnist_dir, tmp_path, capsys, row):
    name, extra, expected = row
    root = tmp_path / "runs"
    root.mkdir()
    message = error_line(capsys, lambda: main(tiny_args(fake_mnist_dir, root, *extra)))
    assert expected in message, message
    if name in README_ROW:
        assert_documented(README_ROW[name], message)
    assert snapshot(root) == {}


@pytest.mark.slow
def test_last_batch_of_one_is_fine_for_a_norm_without_batch_statistics(fake_mnist_dir, tmp_path):
    """The same split with `gn` trains: the refusal depends on the norm, as it should."""
    main(tiny_args(fake_mnist_dir, tmp_path, "--model.norm", "gn", "--data.init_args.val_split", "63",
                   "--data.init_args.drop_last", "false", "--trainer.max_epochs", "1", "--test_after_fit", "false"))
    (run_dir,) = run_dirs(tmp_path)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == 7  # 193 = 6·32 + 1: 7 batches
