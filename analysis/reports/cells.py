"""How the report writes numbers in its tables, and the ``Table`` every renderer draws.

Cells are plain, unescaped strings: each renderer escapes for its own format.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = [
    "DASH",
    "MINUS",
    "Table",
    "correction_name",
    "format_p",
    "points",
    "points_interval",
    "signed_number",
    "signed_pct",
    "thousands",
]

DASH = "—"
MINUS = "\u2212"


@dataclass(frozen=True)
class Table:
    """A titled table. Column indexes: ``numeric`` right-aligned, ``badge`` the verdict,
    ``code`` an identifier (a rule name)."""

    title: str
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: frozenset[int] = frozenset()
    badge: int | None = None
    code: int | None = None
    caption: str = ""


def signed_pct(value: float, decimals: int = 2) -> str:
    if math.isinf(value):
        return "+∞" if value > 0 else f"{MINUS}∞"
    text = f"{value:+.{decimals}%}"
    return text.replace("-", MINUS)


def signed_number(value: float) -> str:
    if math.isinf(value):
        return "+∞" if value > 0 else f"{MINUS}∞"
    return f"{value:+.4g}".replace("-", MINUS)


def format_p(p: float | None) -> str:
    """A p-value for people: three decimals, or "< 0.001"."""
    if p is None or math.isnan(p):
        return DASH
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def thousands(n: int) -> str:
    return f"{n:,}"


def correction_name(correction: str) -> str:
    """The multiple-testing correction as a reader would name it."""
    return {
        "holm": "Holm",
        "benjamini_hochberg": "Benjamini–Hochberg",
        "none": "none",
    }.get(correction, correction)


def points(value: float) -> str:
    if math.isinf(value):
        return f"{MINUS}∞" if value < 0 else "+∞"
    return f"{100 * value:+.2f}".replace("-", MINUS)


def points_interval(low: float, high: float) -> str:
    return f"[{points(low)}, {points(high)}]"
