"""Latency as the gateway records it: counts per bucket, with Prometheus' quantiles."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from analysis.sufficient.validation import finite_number, whole_count

__all__ = ["LatencyHistogram"]


@dataclass(frozen=True)
class LatencyHistogram:
    """Latency counts per bucket, as the gateway records them.

    ``bounds`` are the buckets' upper edges (inclusive, like Prometheus ``le``);
    ``counts`` has one more entry than ``bounds``: the last bucket holds
    everything above ``bounds[-1]``. Counts are per bucket, not cumulative.
    """

    bounds: tuple[float, ...]
    counts: tuple[int, ...]

    def __post_init__(self) -> None:
        bounds = tuple(finite_number("bounds", b) for b in self.bounds)
        if not bounds:
            raise ValueError("bounds must not be empty")
        if any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ValueError("bounds must be strictly increasing")
        counts = tuple(whole_count("counts", c) for c in self.counts)
        if len(counts) != len(bounds) + 1:
            raise ValueError(
                f"counts must have len(bounds) + 1 = {len(bounds) + 1} entries "
                f"(the last one is the overflow bucket), got {len(counts)}"
            )
        object.__setattr__(self, "bounds", bounds)
        object.__setattr__(self, "counts", counts)

    @classmethod
    def empty(cls, bounds: Iterable[float]) -> LatencyHistogram:
        """A histogram with no observations."""
        edges = tuple(bounds)
        return cls(bounds=edges, counts=(0,) * (len(edges) + 1))

    @classmethod
    def from_values(cls, values: Iterable[float], bounds: Iterable[float]) -> LatencyHistogram:
        """Bucket raw latencies the way the recorder does (first bound >= value)."""
        edges = tuple(float(b) for b in bounds)
        data = np.fromiter(values, dtype=np.float64)
        index = np.searchsorted(np.asarray(edges), data, side="left")
        counts = np.bincount(index, minlength=len(edges) + 1)
        return cls(bounds=edges, counts=tuple(int(c) for c in counts))

    @property
    def n(self) -> int:
        """Number of observations."""
        return sum(self.counts)

    def __add__(self, other: LatencyHistogram) -> LatencyHistogram:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        if other.bounds != self.bounds:
            raise ValueError("cannot add histograms with different bounds")
        counts = tuple(a + b for a, b in zip(self.counts, other.counts, strict=True))
        return LatencyHistogram(bounds=self.bounds, counts=counts)

    def __sub__(self, other: LatencyHistogram) -> LatencyHistogram:
        """Counts added since ``other``, an earlier copy of the same histogram."""
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        if other.bounds != self.bounds:
            raise ValueError("cannot subtract histograms with different bounds")
        counts = tuple(a - b for a, b in zip(self.counts, other.counts, strict=True))
        if min(counts) < 0:
            raise ValueError("cannot subtract a histogram with more counts in a bucket")
        return LatencyHistogram(bounds=self.bounds, counts=counts)

    def _locate(self, q: float) -> tuple[int, float]:
        """Bucket holding quantile ``q`` and the rank's fraction of the way through it."""
        rank = q * self.n
        cumulative = 0
        for index, count in enumerate(self.counts):
            # A rank of 0 belongs to the first non-empty bucket, not an empty one before it.
            if count and cumulative + count >= rank:
                return index, (rank - cumulative) / count
            cumulative += count
        raise AssertionError("unreachable: rank <= n")

    def quantile(self, q: float) -> float:
        """Quantile ``q`` interpolated linearly within its bucket, as Prometheus'
        ``histogram_quantile`` does: the first bucket starts at 0 (latencies are not
        negative) and a quantile in the overflow bucket reports the highest finite
        bound. NaN for an empty histogram.
        """
        _check_quantile(q)
        if self.n == 0:
            return math.nan
        index, fraction = self._locate(q)
        if index == len(self.bounds):
            return self.bounds[-1]
        low, high = self.bucket_edges(index)
        return low + (high - low) * fraction

    def bucket_edges(self, index: int) -> tuple[float, float]:
        """Lower and upper edge of bucket ``index`` (the overflow bucket ends at +inf)."""
        if index == 0:
            return (min(0.0, self.bounds[0]), self.bounds[0])
        if index == len(self.bounds):
            return (self.bounds[-1], math.inf)
        return (self.bounds[index - 1], self.bounds[index])

    def quantile_bucket(self, q: float) -> tuple[float, float]:
        """Edges of the bucket that holds quantile ``q``: the true value lies in between."""
        _check_quantile(q)
        if self.n == 0:
            return (math.nan, math.nan)
        return self.bucket_edges(self._locate(q)[0])


def _check_quantile(q: float) -> None:
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be between 0 and 1, got {q!r}")
