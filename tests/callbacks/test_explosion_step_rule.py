"""The detector's host-side rule (`StepRule`) decides every step exactly as the float32 device computation
it replaced, and `sync_every` defaults to a read per step on the CPU only.

The reference is that device computation, written here with torch: the running reference as
`torch.nanquantile(..., interpolation="lower")` over a window of NaN-padded slots, the patience
counters and the comparisons on float32 tensors. Sequences mix heavy-tailed norms, planted spikes,
NaN/inf losses and norms, runs of tiny norms, and norms placed exactly on the spike limit (and one
float32 step above it), where a rounding difference would change the decision.
"""
import math
import random

import pytest
import torch
from torch import nn

from callbacks.explosion import DEVICE_SYNC_EVERY, TRIGGERS, ExplosionDetector, StepRule, to_float32


def device_rule_events(pairs, factor, quantile, window, warmup, patience, vanish_threshold, vanish_patience):
    """Each step's (trigger, value, reference) or None, computed as the device computed them."""
    history = torch.full((window,), math.nan)
    high_run = low_run = torch.zeros((), dtype=torch.int64)
    events = []
    for seen, (loss_value, norm_value) in enumerate(pairs):
        loss, total = torch.tensor(loss_value), torch.tensor(norm_value)
        reference = torch.nanquantile(history, quantile, interpolation="lower")
        nan_loss, inf_grad = ~torch.isfinite(loss), ~torch.isfinite(total)
        high = total > factor * reference if seen >= warmup else torch.tensor(False)
        high_run = torch.where(high, high_run + 1, 0)
        spike = high_run >= patience
        high_run = torch.where(spike, 0, high_run)
        vanish = torch.tensor(False)
        if vanish_threshold is not None:
            low_run = torch.where(total < vanish_threshold, low_run + 1, 0)
            vanish = low_run >= vanish_patience
            low_run = torch.where(vanish, 0, low_run)
        flags = [bool(nan_loss), bool(inf_grad), bool(spike), bool(vanish)]
        kind = flags.index(True) if any(flags) else None
        value = float(loss) if bool(nan_loss) else float(total)
        events.append(None if kind is None else (TRIGGERS[kind], value, float(reference)))
        history[seen % window] = torch.where(inf_grad, math.nan, total)
    return events


def same(a, b) -> bool:
    """Equal events, NaN equal to NaN."""
    if a is None or b is None:
        return a is b
    return a[0] == b[0] and all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a[1:], b[1:]))


def planted_sequence(seed: int, steps: int, options: dict) -> list[tuple[float, float]]:
    """(loss, norm) pairs, float32 values; some norms sit exactly on the device's spike limit."""
    rng = random.Random(seed)
    pairs = []
    for t in range(steps):
        norm = rng.lognormvariate(0, 1.5)
        loss = rng.uniform(0.1, 3)
        roll = rng.random()
        if roll < 0.05:
            norm *= rng.choice([20, 300, 1e6])
        elif roll < 0.08:
            norm = rng.choice([math.nan, math.inf])
        elif roll < 0.10:
            loss = rng.choice([math.nan, math.inf])
        elif roll < 0.20:
            norm = rng.uniform(0, 2e-8)
        elif roll < 0.30 and t >= options["warmup"]:  # on the limit, or one float32 step above it
            limit = options["factor"] * device_reference(pairs, options["quantile"], options["window"])
            norm = float(torch.nextafter(limit, torch.tensor(math.inf)) if rng.random() < 0.5 else limit)
        pairs.append((float(torch.tensor(loss)), float(torch.tensor(norm))))
    return pairs


def device_reference(pairs, quantile, window) -> torch.Tensor:
    history = [norm if math.isfinite(norm) else math.nan for _, norm in pairs[-window:]]
    return torch.nanquantile(torch.tensor(history or [math.nan]), quantile, interpolation="lower")


OPTIONS = [
    dict(factor=10.0, quantile=0.9, window=100, warmup=1, patience=1, vanish_threshold=1e-8, vanish_patience=3),
    dict(factor=3.3, quantile=0.7, window=9, warmup=4, patience=2, vanish_threshold=1e-8, vanish_patience=2),
    dict(factor=1.7, quantile=0.5, window=17, warmup=0, patience=1, vanish_threshold=None, vanish_patience=1),
    dict(factor=5.0, quantile=1.0, window=5, warmup=2, patience=1, vanish_threshold=3e-9, vanish_patience=1),
]


@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: f"q{o['quantile']}_w{o['window']}_f{o['factor']}")
@pytest.mark.parametrize("seed", [0, 1])
def test_the_rule_decides_every_step_as_the_device_did(options, seed):
    pairs = planted_sequence(seed, 400, options)
    expected = device_rule_events(pairs, **options)
    rule = StepRule(options["factor"], options["quantile"], options["window"], options["warmup"],
                    options["patience"], options["vanish_threshold"], options["vanish_patience"])
    actual = [rule.observe(loss, norm) for loss, norm in pairs]
    mismatches = [(t, a, e) for t, (a, e) in enumerate(zip(actual, expected)) if not same(a, e)]
    assert not mismatches, mismatches[:5]
    kinds = {e[0] for e in expected if e is not None}
    assert kinds >= {"nan_loss", "inf_grad", "spike"}  # the sequence exercises the triggers
    on_limit = sum(1 for t, (_, norm) in enumerate(pairs) if t >= options["warmup"] and math.isfinite(norm)
                   and norm == float(options["factor"] * device_reference(pairs[:t], options["quantile"],
                                                                          options["window"])))
    assert on_limit > 5  # ties with the limit were decided too (and found no spike, as the device)


class OnDevice(nn.Module):
    """A module that reports `device_type` as its device (the detector asks `pl_module.device`)."""

    def __init__(self, device_type: str):
        super().__init__()
        self.linear, self.device = nn.Linear(2, 2), torch.device(device_type)


@pytest.mark.parametrize("device_type,args,expected", [
    ("cpu", {}, 1),  # a read costs nothing: act before every bad update
    ("cuda", {}, DEVICE_SYNC_EVERY),  # never stall the accelerator each step
    ("cuda", {"action": "skip_step"}, 1),  # a skip must be read before its update
    ("cuda", {"spike_action": "skip_step"}, 1),
    ("cuda", {"sync_every": 3}, 3),  # given: kept
    ("cpu", {"sync_every": 5}, 5),
])
def test_sync_every_defaults_to_a_read_per_step_on_the_cpu_only(device_type, args, expected):
    assert DEVICE_SYNC_EVERY > 1
    detector = ExplosionDetector(**args)
    detector.on_fit_start(None, OnDevice(device_type))
    assert detector._sync_every == expected


@pytest.mark.parametrize("x", [0.1, 1e-8, 3.4e38, 3.5e38, 1e39, -1e39, 1e300])
def test_to_float32_rounds_as_a_float32_tensor_does_overflow_included(x):
    assert to_float32(x) == torch.tensor(x, dtype=torch.float64).float().item()


def test_vanish_counts_norms_strictly_below_the_threshold():
    """README: `grad/norm` < `vanish_threshold`: a norm exactly at it does not count."""
    rule = StepRule(10.0, 0.9, 100, 1, 1, vanish_threshold=0.5, vanish_patience=2)
    assert [rule.observe(1.0, norm) for norm in (0.5, 0.5, 0.25)] == [None, None, None]
    assert rule.observe(1.0, 0.25) == ("vanish", 0.25, 0.5)  # the reference: the lower 0.9 quantile of 0.5, 0.5, 0.25
