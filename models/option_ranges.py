"""The range of every numeric `ImageClassifier` option, checked when the model is built.

A value outside its range would train (or fail deep inside a step) and give a wrong number, so it is
refused with one line naming the option, the value and what is allowed, before a run directory
exists. The ranges are the physical ones: a learning rate, a group count, a batch-norm momentum or a
decay that is negative means nothing, and SGD momentum or Adam's β ≥ 1 makes the running averages
grow without bound (Kingma & Ba 2015, §2, Algorithm 1: β₁, β₂ ∈ [0, 1)).
"""
from __future__ import annotations

import math


def is_finite_number(value) -> bool:
    """An int or float (not a bool: YAML's `true` is one in Python) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# option -> (predicate, what is allowed)
MODEL_OPTION_RANGES = {
    "lr": (lambda v: is_finite_number(v) and v > 0, "a finite number > 0"),
    "momentum": (lambda v: is_finite_number(v) and 0 <= v < 1, "a number in [0, 1)"),
    "betas": (lambda v: len(v) == 2 and all(is_finite_number(b) and 0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "weight_decay": (lambda v: is_finite_number(v) and v >= 0, "a finite number >= 0"),
    "lambda_lr_scale": (lambda v: is_finite_number(v) and v >= 0, "a finite number >= 0"),
    "gamma": (lambda v: is_finite_number(v) and v > 0, "a finite number > 0"),
    "step_size": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "milestones": (lambda v: v is None or all(is_integer(m) and m >= 0 for m in v), "epochs: integers >= 0, or null"),
    "warmup_epochs": (lambda v: is_finite_number(v) and v >= 0, "a finite number >= 0"),
    "norm_groups": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "num_classes": (lambda v: is_integer(v) and v >= 2, "an integer >= 2"),
    "in_channels": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
    "image_size": (lambda v: is_integer(v) and v >= 1, "an integer >= 1"),
}


def check_model_options(**values) -> None:
    """Fail with one line on the first option outside its range (`lr` before the others)."""
    for key, (valid, allowed) in MODEL_OPTION_RANGES.items():
        if key in values and not valid(values[key]):
            raise ValueError(f"model.{key} must be {allowed}, got {values[key]!r}")
