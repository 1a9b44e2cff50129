"""The range of every numeric `ImageClassifier` option, checked when the model is built.

A value outside its range would train (or fail deep inside a step) and give a wrong number, so it is
refused with one line naming the option, the value and what is allowed, before a run directory
exists. The ranges are the physical ones: a learning rate, a group count, a batch-norm momentum or a
decay that is negative means nothing, and SGD momentum or Adam's β ≥ 1 makes the running averages
grow without bound (Kingma & Ba 2015, §2, Algorithm 1: β₁, β₂ ∈ [0, 1)).
"""
from __future__ import annotations

from value_ranges import Range, check_values, finite_number, integer, is_integer, number_in

_UNIT = number_in("[0, 1)")

# option -> its range, checked in this order (`lr` first)
MODEL_OPTION_RANGES = {
    "lr": finite_number(above=0),
    "momentum": _UNIT,
    "betas": Range(lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_UNIT.valid(b) for b in v),
                   "two numbers in [0, 1)"),
    "weight_decay": finite_number(at_least=0),
    "lambda_lr_scale": finite_number(at_least=0),
    "lambda_max_step": finite_number(above=0).or_none(),
    "gamma": finite_number(above=0),
    "step_size": integer(1),
    "milestones": Range(lambda v: v is None or (isinstance(v, (list, tuple)) and all(is_integer(m) and m >= 0 for m in v)),
                        "epochs: integers >= 0, or null"),
    "warmup_epochs": finite_number(at_least=0),
    "norm_groups": integer(1),
    "num_classes": integer(2),
    "in_channels": integer(1),
    "image_size": integer(1),
}


def check_model_options(**values) -> None:
    """Fail with one line on the first option outside its range (`lr` before the others)."""
    check_values("model.", MODEL_OPTION_RANGES, values)

