"""External test vectors: loaded from the verbatim copies under tests/analysis/vectors/.

The copies exist because a CI clone may not have ``../shared/vectors`` beside
it; ``test_vector_copies.py`` checks they still equal the shared originals
when those are present.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from analysis.sufficient import MetricStats, ProportionStats

LOCAL = Path(__file__).resolve().parent / "vectors"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
FILES = (
    "growthbook/gbstats_expected.json",
    "growthbook/shared_expected.json",
    "derived/spotify_confidence_gst_expected.json",
)

# The vectors are rounded to 5 decimals (some to 9); matching within 1e-5 is
# "reproduces gbstats to 4 decimals" with room to spare.
TOLERANCE = 1e-5


def load(name: str) -> dict[str, Any]:
    """One vector file, parsed."""
    data: dict[str, Any] = json.loads((LOCAL / name).read_text())
    return data


def gbstats_cases(*prefixes: str) -> list[Any]:
    """gbstats cases whose id starts with one of ``prefixes``, as pytest params."""
    cases = load("growthbook/gbstats_expected.json")["cases"]
    return [
        pytest.param(case, id=case["id"])
        for case in cases
        if any(case["id"].startswith(prefix) for prefix in prefixes)
    ]


def arm(spec: dict[str, Any]) -> MetricStats | ProportionStats:
    """Sufficient statistics from a vector's arm description."""
    if spec.get("type") == "proportion":
        return ProportionStats(n=spec["n"], sum=spec["sum"])
    return MetricStats(n=spec["n"], sum=spec["sum"], sum_squares=spec["sum_squares"])


def number(value: float | str) -> float:
    """A vector number, where infinity is spelled "inf"."""
    return math.inf if value == "inf" else float(value)
