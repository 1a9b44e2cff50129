"""SIGTERM and SIGINT end a run as `interrupted`: a non-zero exit (128 + the signal number, as a shell
reports a process killed by it), one `normlab:` line, and `summary.json` status `interrupted`.

SIGTERM is what `timeout`, `kill` and a scheduler send. Lightning's own SIGTERM handler (installed for
the duration of fit/validate/test/predict, calling any handler already installed after its own) stops
the loop at the next batch boundary with a `SIGTERMException`, whose exit code is 0; SIGINT becomes
KeyboardInterrupt, which Lightning turns into `sys.exit(1)`. The handlers here remember which signal
came, so the CLI can turn either ending into `RunInterrupted`; outside Lightning's loops (while parsing
or building the model) they stop the process themselves. SIGUSR1 (SLURM's requeue signal, on which
Lightning saves `hpc_ckpt_*.ckpt` and requeues) is left to Lightning.
"""
from __future__ import annotations

import signal
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

_received: list[int] = []  # the signals seen since `recording()` began (signals are process-wide)
_deferring = [0, False]  # depth of `signals_deferred` blocks, and whether a stop waits for the outermost end


class RunInterrupted(Exception):
    """`final_test`: the signal came during the test that ends `fit`, after training completed: the run
    stays `completed` without a test result, and the same command runs the test (run/status.py, UNTESTED)."""

    def __init__(self, signum: int, where: Path | None, final_test: bool = False):
        self.signum, self.where = signum, where
        self.exit_code = 128 + signum
        state = ("status: completed, not tested; relaunch the same command to run the test" if final_test
                 else "status: interrupted; relaunch the same command to resume")
        during = " during the final test" if final_test else ""
        super().__init__(f"interrupted by {signal.Signals(signum).name}{during}"
                         + (f" | run dir: {where} | {state}" if where is not None else ""))


def _on_signal(signum: int, frame) -> None:
    _received.append(signum)
    # SIGINT: Python's own behaviour, KeyboardInterrupt (Lightning stops gracefully on it). SIGTERM: only
    # when nobody else handles it (no Lightning loop runs); inside a loop, Lightning's handler called this
    # one after flagging the trainer, which stops at the next batch boundary.
    if signum == signal.SIGINT or signal.getsignal(signal.SIGTERM) is _on_signal:
        if _deferring[0]:
            _deferring[1] = True
        else:
            raise KeyboardInterrupt


@contextmanager
def signals_deferred() -> Iterator[None]:
    """A stop asked for inside the block is raised when it ends. For `torch.save`: interrupted inside its
    Python write callback, its C++ writer is left to write to a closed file later and aborts the
    interpreter (exit -6, no summary)."""
    _deferring[0] += 1
    try:
        yield
    finally:
        _deferring[0] -= 1
    if not _deferring[0] and _deferring[1]:
        _deferring[1] = False
        raise KeyboardInterrupt


@contextmanager
def recording() -> Iterator[None]:
    """Record SIGTERM/SIGINT for the duration (the previous handlers come back afterwards)."""
    _received.clear()
    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def interruption(where: Path | None, final_test: bool = False) -> RunInterrupted | None:
    """The RunInterrupted for the first signal recorded, None when none came."""
    return RunInterrupted(_received[0], where, final_test) if _received else None
