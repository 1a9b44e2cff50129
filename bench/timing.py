"""The one timing helper every benchmark uses: candidates interleaved, median of repeats, ratios.

Machines here are shared and noisy, so a benchmark never compares numbers from separate runs: all
candidates are timed round-robin in the same process (A, B, C, A, B, C, ...) and compared by the
ratio of their medians.
"""
from __future__ import annotations

import resource
import statistics
import time
from typing import Callable

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


def ratios(medians: dict[str, float], baseline: str) -> dict[str, float]:
    return {name: value / medians[baseline] for name, value in medians.items()}


def peak_host_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name()
    import platform

    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
