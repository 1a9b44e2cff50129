"""Ctrl-C during the test that ends `fit`: training is complete, its test is not. The run must say so
(`completed`, no test accuracy, and a line that does not claim the run was interrupted), and the same
command must run the missing test (and only the test: no training step again)."""
import csv
import json
import os
import signal

import pytest
from pytorch_lightning import Callback

from lightning_app.command import main
from tests.helpers import tiny_args


class CtrlCAtFirstTestStart(Callback):
    """Sends this process SIGINT as the first final test starts, as a user's Ctrl-C would; the relaunch
    names it too (the same command: a callback under trainer.callbacks is part of the run's identity)."""

    interrupted = False

    def on_test_start(self, trainer, pl_module):
        if not CtrlCAtFirstTestStart.interrupted:
            CtrlCAtFirstTestStart.interrupted = True
            os.kill(os.getpid(), signal.SIGINT)


def training_rows(run_dir):
    """(step, training loss) of every training row of metrics.csv (the test adds columns, not rows)."""
    with open(run_dir / "metrics.csv", newline="") as f:
        return [(row["step"], row["train/loss"]) for row in csv.DictReader(f) if row.get("train/loss")]


def test_ctrl_c_in_the_final_test_then_the_same_command_runs_only_the_test(fake_mnist_dir, tmp_path, capsys):
    args = tiny_args(fake_mnist_dir, tmp_path, "--run_name", "r", "--trainer.max_epochs", "1", "--trainer.callbacks+",
                     "tests.lightning_app.test_final_test_interrupted.CtrlCAtFirstTestStart")
    run_dir = tmp_path / "quickstart" / "r"
    with pytest.raises(SystemExit) as info:
        main(args)
    assert info.value.code == 130
    err = capsys.readouterr().err
    (line,) = [line for line in err.splitlines() if line.startswith("normlab: interrupted")]
    assert line == (f"normlab: interrupted by SIGINT during the final test | run dir: {run_dir} | status: completed, "
                    "not tested; relaunch the same command to run the test")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["test_acc"] is None
    steps, rows = summary["steps"], training_rows(run_dir)

    main(args)  # the same command: no "already holds a completed run"
    out = capsys.readouterr()
    assert f"normlab: running the missing final test of {run_dir}" in out.err
    after = json.loads((run_dir / "summary.json").read_text())
    assert after["status"] == "completed" and isinstance(after["test_acc"], float)
    assert after["steps"] == steps and training_rows(run_dir) == rows  # nothing trained again
    assert {k: after[k] for k in ("best_val_acc", "final_val_acc", "epochs")} == \
        {k: summary[k] for k in ("best_val_acc", "final_val_acc", "epochs")}
    with pytest.raises(SystemExit) as again:  # now tested: a completed run, refused as before
        main(args)
    assert again.value.code == 2
