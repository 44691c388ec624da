"""Checks shared by the statistics' constructors: counts are whole, sums are finite."""

from __future__ import annotations

import math
import numbers

__all__ = ["RELATIVE_TOLERANCE", "finite_number", "whole_count"]

# ss and sum are accumulated in floats over many requests; allow this much
# relative rounding before calling sum_squares inconsistent with sum.
RELATIVE_TOLERANCE = 1e-7


def _real(value: object) -> float | None:
    # numbers.Real admits numpy scalars as well as int and float; bool is not a count.
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def whole_count(name: str, value: object) -> int:
    """``value`` as a count (a whole number >= 0), or a ValueError naming ``name``."""
    number = _real(value)
    # Integral floats are fine: JSON and Redis hand counts over as 100.0.
    if number is None or number != int(number):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if number < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return int(number)


def finite_number(name: str, value: object) -> float:
    """``value`` as a finite float, or a ValueError naming ``name``."""
    number = _real(value)
    if number is None:
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return number
