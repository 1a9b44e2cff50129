"""Two different signals: the exit status and the last line are those of the first. A scheduler's SIGTERM
(`timeout`, `kill`) followed by a Ctrl-C while the run winds down is still a SIGTERM ending (143).

Real signals, sent by the fit to itself in the middle of a training step, through `lightning fit`'s own
handlers and Lightning's (in this process: the slow tier sends them from outside, one at a time)."""
import json
import os
import signal

import pytest
from pytorch_lightning import Callback

from lightning_app import cli, command
from tests.helpers import run_dirs, tiny_args


class SignalsAt(Callback):
    """At training step `step`, send this process each of `signals`, in order."""

    def __init__(self, step: int, signals: tuple[int, ...]):
        self.step, self.signals = step, signals

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            for signum in self.signals:
                os.kill(os.getpid(), signum)


def test_sigterm_then_ctrl_c_exits_as_sigterm(data_dir, tmp_path, monkeypatch, capsys):
    build_trainer = cli.NormlabCLI.instantiate_trainer

    def with_signals(self, **kwargs):
        trainer = build_trainer(self, **kwargs)
        trainer.callbacks.append(SignalsAt(3, (signal.SIGTERM, signal.SIGINT)))
        return trainer

    monkeypatch.setattr(cli.NormlabCLI, "instantiate_trainer", with_signals)
    root = tmp_path / "runs"
    with pytest.raises(SystemExit) as info:
        command.main(tiny_args(data_dir, root))
    (run_dir,) = run_dirs(root)
    err = capsys.readouterr().err
    assert info.value.code == 128 + signal.SIGTERM, err[-2000:]
    assert [line for line in err.splitlines() if line.startswith("normlab: interrupted")] == [
        f"normlab: interrupted by SIGTERM | run dir: {run_dir} | status: interrupted; relaunch the same command "
        "to resume"]
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
