"""Sufficient statistics per variant: what the gateway recorder keeps and every test reads.

A variant's outcomes are summarised by ``n``, ``sum`` and ``sum_squares`` (and
latency histogram buckets), so analysis never scans raw events and statistics
from several time windows or gateway replicas simply add together.

The statistics live in one module each: ``metrics`` (a mean's, a proportion's
and a per-unit ratio's sums), ``histogram`` (latency buckets), ``variant``
(everything recorded for one variant) and ``moments`` (the arrays every test
formula reads). Import them from here.
"""

from __future__ import annotations

from analysis.sufficient.histogram import LatencyHistogram
from analysis.sufficient.metrics import (
    MetricStats,
    ProportionStats,
    RatioStats,
    SampleStats,
    is_proportion,
)
from analysis.sufficient.moments import (
    FloatArray,
    MetricKind,
    Moments,
    SampleStatistic,
    proportion_variance,
    sample_covariance,
    sample_variance,
)
from analysis.sufficient.variant import VariantStats

__all__ = [
    "FloatArray",
    "LatencyHistogram",
    "MetricKind",
    "MetricStats",
    "Moments",
    "ProportionStats",
    "RatioStats",
    "SampleStatistic",
    "SampleStats",
    "VariantStats",
    "is_proportion",
    "proportion_variance",
    "sample_covariance",
    "sample_variance",
]
