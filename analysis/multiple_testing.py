"""Adjusted p-values when several metrics × variants are tested at once.

Holm controls the family-wise error rate (any false positive); Benjamini–Hochberg
controls the false-discovery rate. Both are a sort and a running max/min, so
they are written here with numpy rather than importing statsmodels (~1 s) on the
report path; the tests check them against ``statsmodels.stats.multitest``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from analysis.sufficient import FloatArray

__all__ = ["AdjustmentMethod", "adjust_p_values", "benjamini_hochberg", "holm"]

AdjustmentMethod = Literal["holm", "bh"]


def _validated(p_values: Sequence[float]) -> FloatArray:
    for value in p_values:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"p-values must be between 0 and 1, got {value!r}")
    return np.asarray(p_values, dtype=np.float64).reshape(-1)


def holm(p_values: Sequence[float]) -> tuple[float, ...]:
    """Holm step-down adjusted p-values, in input order (``multipletests(method="holm")``)."""
    p = _validated(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    # The i-th smallest p is multiplied by (m - i); a running max keeps the order.
    stepped = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return tuple(float(v) for v in adjusted)


def benjamini_hochberg(p_values: Sequence[float]) -> tuple[float, ...]:
    """Benjamini–Hochberg adjusted p-values (q-values), in input order (``method="fdr_bh"``)."""
    p = _validated(p_values)
    m = p.size
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, m + 1)
    # Step-up: each q-value is the smallest scaled p at its rank or above.
    stepped = np.minimum.accumulate(scaled[::-1])[::-1]
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return tuple(float(v) for v in adjusted)


def adjust_p_values(
    p_values: Sequence[float], method: AdjustmentMethod = "holm"
) -> tuple[float, ...]:
    """Adjust p-values with ``method``: ``holm`` (the default for goal metrics) or ``bh``."""
    if method == "holm":
        return holm(p_values)
    if method == "bh":
        return benjamini_hochberg(p_values)
    raise ValueError(f"method must be 'holm' or 'bh', got {method!r}")
