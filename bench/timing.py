"""The one timing helper every benchmark uses: candidates interleaved, median of repeats, ratios.

Machines here are shared and noisy, so a benchmark never compares numbers from separate runs: all
candidates are timed round-robin in the same process (A, B, C, A, B, C, ...) and compared by the
ratio of their medians.
"""
from __future__ import annotations

import os
import resource
import statistics
import subprocess
import time
from typing import Callable, Sequence

import torch


def _sync(device: str | torch.device | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def interleaved_medians(candidates: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2,
                        device: str | torch.device | None = None) -> dict[str, float]:
    """Median wall seconds of each zero-argument callable, timed round-robin."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    _sync(device)
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def process_seconds(command: Sequence[str], env: dict[str, str] | None = None, log: str | None = None,
                    cwd: str | os.PathLike | None = None) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, of the process and the children it waited for) of one
    run of `command` in `cwd`; output goes to `log` (or is dropped). A failing command raises, naming its log.

    On a shared machine the CPU time is the steadier measure: waiting for a core counts in the wall
    time only."""
    with open(log or os.devnull, "w") as out:
        start = time.perf_counter()
        process = subprocess.Popen(list(command), env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {process.returncode} (output: {log or 'dropped'})")
    return wall, usage.ru_utime + usage.ru_stime


def interleaved_process_medians(candidates: dict[str, Callable[[], tuple[float, float]]], repeats: int
                                ) -> dict[str, dict[str, float]]:
    """{name: {"wall": median, "cpu": median}} of callables returning `process_seconds`, timed round-robin."""
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            samples[name].append(fn())
    return {name: {"wall": statistics.median(w for w, _ in values), "cpu": statistics.median(c for _, c in values)}
            for name, values in samples.items()}


def ratios(medians: dict[str, float], baseline: str) -> dict[str, float]:
    return {name: value / medians[baseline] for name, value in medians.items()}


def peak_host_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, to say how busy the machine was."""
    return " / ".join(f"{value:.1f}" for value in os.getloadavg())


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
