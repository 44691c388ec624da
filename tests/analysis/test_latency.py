"""p99 latency of a variant against the champion, from histogram buckets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.latency import compare_latency
from analysis.sufficient import LatencyHistogram

BOUNDS = tuple(round(0.1 * 1.25**i, 4) for i in range(60))


def _histogram(seed: int, scale: float, size: int = 5000) -> tuple[LatencyHistogram, np.ndarray]:
    latencies = scale * np.random.default_rng(seed).lognormal(3.0, 0.5, size=size)
    return LatencyHistogram.from_values(latencies, BOUNDS), latencies


def test_ratio_and_difference_track_the_raw_percentiles() -> None:
    champion, raw_champion = _histogram(0, 1.0)
    canary, raw_canary = _histogram(1, 1.5)
    result = compare_latency(champion, canary)
    true_ratio = np.percentile(raw_canary, 99) / np.percentile(raw_champion, 99)
    assert result.conclusive
    assert result.ratio_low <= true_ratio <= result.ratio_high
    assert result.ratio == pytest.approx(true_ratio, rel=0.3)
    assert result.difference == pytest.approx(result.treatment - result.champion)
    assert result.champion_n == result.treatment_n == 5000


def test_max_ratio_flags_a_slower_variant() -> None:
    champion, _ = _histogram(0, 1.0)
    slow, _ = _histogram(1, 2.0)
    result = compare_latency(champion, slow, max_ratio=1.2)
    assert result.worse
    assert "over the 1.2x limit" in result.message
    same, _ = _histogram(2, 1.0)
    assert not compare_latency(champion, same, max_ratio=1.5).worse


def test_too_few_requests_is_inconclusive_never_a_pass() -> None:
    champion, _ = _histogram(0, 1.0)
    few, _ = _histogram(1, 5.0, size=99)
    result = compare_latency(champion, few, max_ratio=1.2)
    assert not result.conclusive
    assert not result.worse
    assert math.isnan(result.ratio)
    assert "inconclusive" in result.message and "treatment 99" in result.message


def test_quantile_beyond_the_last_bucket_is_called_out() -> None:
    champion = LatencyHistogram(bounds=(1.0, 2.0), counts=(200, 0, 0))
    slow = LatencyHistogram(bounds=(1.0, 2.0), counts=(100, 0, 100))
    result = compare_latency(champion, slow, max_ratio=1.5)
    assert result.worse
    assert math.isinf(result.ratio_high)
    assert "above the largest bucket" in result.message


def test_histograms_must_share_buckets() -> None:
    with pytest.raises(ValueError, match="same bounds"):
        compare_latency(LatencyHistogram.empty((1.0,)), LatencyHistogram.empty((2.0,)))
