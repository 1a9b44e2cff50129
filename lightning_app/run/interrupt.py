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


class RunInterrupted(Exception):
    def __init__(self, signum: int, where: Path | None):
        self.signum, self.where = signum, where
        self.exit_code = 128 + signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}" + (
            f" | run dir: {where} | status: interrupted; relaunch the same command to resume"
            if where is not None else ""))


def _on_signal(signum: int, frame) -> None:
    _received.append(signum)
    if signum == signal.SIGINT:
        raise KeyboardInterrupt  # Python's own behaviour; Lightning stops gracefully on it
    if signal.getsignal(signal.SIGTERM) is _on_signal:
        # Nobody else handles it (no Lightning loop runs): stop here. Inside a loop, Lightning's handler
        # called this one after flagging the trainer, which stops at the next batch boundary.
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


def interruption(where: Path | None) -> RunInterrupted | None:
    """The RunInterrupted for the first signal recorded, None when none came."""
    return RunInterrupted(_received[0], where) if _received else None
