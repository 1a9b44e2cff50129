"""Children that cannot outlive their parent: the kernel's parent-death signal (Linux prctl(2),
PR_SET_PDEATHSIG), armed between fork and exec.

`lightning sweep` starts each training in its own session (a terminal's Ctrl-C must reach only the
sweep), so nothing else would end a training whose sweep was SIGKILLed; a relaunched sweep would then
find a second writer in the run directory. With the signal armed, the training gets SIGTERM (which
Lightning turns into a clean stop) the moment the sweep dies, however it dies.
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
from typing import Callable

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(death_signal: int = signal.SIGTERM) -> Callable[[], None] | None:
    """A `subprocess.Popen(preexec_fn=...)` that arms `death_signal` for the child (None off Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()

    def arm() -> None:  # runs in the child between fork and exec: keep it tiny
        prctl(_PR_SET_PDEATHSIG, int(death_signal))
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm
