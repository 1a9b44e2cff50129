"""The values an option may take, and the one check that refuses any other, for every layer.

A `Range` is a predicate and its description in words; `Range.check(name, value)` raises
`ValueError("<name> must be <allowed>, got <value>")`, the one line the CLI prints as
`normlab: error: ...`. Models, norm layers, callbacks and data modules all state their options'
ranges with the constructors below, so a value is judged the same way everywhere: YAML's `true` is a
`bool`, which Python also counts as an `int`, and is neither an integer nor a number here.

This package imports nothing of the project, so every layer (models, datamodules, callbacks,
lightning_app) may use it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping


def is_integer(value: Any) -> bool:
    """An int that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is neither NaN nor infinite."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Range:
    """The values an option may take: `valid(value)`, and `allowed`, what that is in words."""

    valid: Callable[[Any], bool]
    allowed: str

    def check(self, name: str, value: Any) -> None:
        """Refuse `value` of option `name` with one line, unless it is in the range."""
        if not self.valid(value):
            raise ValueError(f"{name} must be {self.allowed}, got {value!r}")

    def or_none(self, meaning: str = "") -> Range:
        """This range, or None (null in YAML); `meaning` says what None stands for."""
        return Range(lambda v: v is None or self.valid(v), f"{self.allowed} or null{f' ({meaning})' if meaning else ''}")

    def described(self, allowed: str) -> Range:
        """The same values, described in other words (e.g. with what the value means)."""
        return Range(self.valid, allowed)


def integer(minimum: int) -> Range:
    return Range(lambda v: is_integer(v) and v >= minimum, f"an integer >= {minimum}")


def finite_number(above: float | None = None, at_least: float | None = None) -> Range:
    """A finite number, > `above` or >= `at_least` when given."""
    if above is not None:
        return Range(lambda v: is_finite_number(v) and v > above, f"a finite number > {above:g}")
    if at_least is not None:
        return Range(lambda v: is_finite_number(v) and v >= at_least, f"a finite number >= {at_least:g}")
    return Range(is_finite_number, "a finite number")


def number_in(interval: str) -> Range:
    """A number in `interval`, written as in mathematics: "[0, 1)", "(0, 1]", "[0, 1]"."""
    low, high = (float(bound) for bound in interval[1:-1].split(","))
    above_low = (lambda v: v >= low) if interval[0] == "[" else (lambda v: v > low)
    below_high = (lambda v: v <= high) if interval[-1] == "]" else (lambda v: v < high)
    return Range(lambda v: is_finite_number(v) and above_low(v) and below_high(v), f"a number in {interval}")


def one_of(*values: Any) -> Range:
    return Range(lambda v: not isinstance(v, bool) and v in values, f"one of {', '.join(map(str, values))}")


BOOLEAN = Range(lambda v: isinstance(v, bool), "true or false")


def check_values(prefix: str, ranges: Mapping[str, Range], values: Mapping[str, Any]) -> None:
    """Check each of `values` that has a range, in the order of `ranges`; an error names `<prefix><key>`."""
    for key, allowed in ranges.items():
        if key in values:
            allowed.check(f"{prefix}{key}", values[key])
