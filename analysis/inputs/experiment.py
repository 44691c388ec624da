"""What the engine analyses: one experiment's statistics and how they are judged."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from analysis.drift import ExperimentDrift
from analysis.epochs import Epoch
from analysis.guardrails import GuardrailSpec, legacy_guardrails
from analysis.shadows import DEFAULT_SHADOW_MARGIN, ShadowData
from analysis.sufficient import LatencyHistogram, MetricStats, ProportionStats, RatioStats
from analysis.units import AnalysisUnit

__all__ = ["AnalysisSettings", "ExperimentData", "Stats", "VariantData", "WindowData"]

Stats = MetricStats | ProportionStats | RatioStats


@dataclass(frozen=True)
class AnalysisSettings:
    """How significance is decided (defaults: the best engines' defaults)."""

    alpha: float = 0.05
    sequential: bool = True
    tuning_n: int = 5000
    min_samples: int = 200
    mde: float = 0.02
    power: float = 0.8
    correction: Literal["holm", "benjamini_hochberg", "none"] = "holm"
    primary_metric: str = "accuracy"
    direction: Literal["increase", "decrease"] = "increase"
    # How the primary metric's effect is reported (the verdict always tests the
    # difference): None picks relative for proportions, absolute for means.
    difference: Literal["relative", "absolute"] | None = None
    # The original two guardrail settings, read when ``guardrails`` is None
    # (None here turns that guardrail off).
    max_error_rate_increase: float | None = 0.01
    max_p99_ratio: float | None = 1.5
    srm_threshold: float = 0.001
    # Non-inferiority margin of the shadows' paired test, in accuracy points.
    shadow_margin: float = DEFAULT_SHADOW_MARGIN
    # When set, the margin instead: this share of the live model's accuracy on each
    # shadow's labelled requests (a ramp plan's relative margin, as its shadow gate
    # reads it; ``analysis.shadows.relative_margin``).
    shadow_margin_relative: float | None = None
    duration_s: float | None = None
    # Every guardrail checked, in order (``analysis.guardrails``); () checks none.
    guardrails: tuple[GuardrailSpec, ...] | None = None

    @property
    def active_guardrails(self) -> tuple[GuardrailSpec, ...]:
        """The guardrails checked: ``guardrails``, or those the two original keys describe."""
        if self.guardrails is not None:
            return self.guardrails
        return legacy_guardrails(self.max_error_rate_increase, self.max_p99_ratio)


@dataclass(frozen=True)
class VariantData:
    """Everything recorded for one variant."""

    name: str
    role: str
    weight: float
    requests: int
    errors: int = 0
    latency: LatencyHistogram | None = None
    metrics: Mapping[str, Stats] = field(default_factory=dict)
    # The model version it runs now: epochs in which it ran another are not compared.
    model_version: str | None = None
    # Errors per request with units (users) as the observations, when analysed per unit.
    unit_errors: RatioStats | None = None
    # Latency of the answered requests as a mean's statistics (the mean-latency
    # guardrail); None when only the histogram is known.
    latency_ms: MetricStats | None = None

    @property
    def error_stats(self) -> ProportionStats | RatioStats:
        """Errors per request, as a proportion (per unit when the unit is not the request)."""
        if self.unit_errors is not None:
            return self.unit_errors
        return ProportionStats(self.requests, float(self.errors))


@dataclass(frozen=True)
class WindowData:
    """One time window: per-variant requests and metrics recorded in it."""

    start: float
    requests: Mapping[str, int]
    metrics: Mapping[str, Mapping[str, Stats]]  # variant -> metric -> stats


@dataclass(frozen=True)
class ExperimentData:
    """One experiment's statistics, ready for the engine."""

    name: str
    variants: tuple[VariantData, ...]
    settings: AnalysisSettings = field(default_factory=AnalysisSettings)
    windows: tuple[WindowData, ...] = ()
    drift: ExperimentDrift | None = None  # data drift against the training reference, if checked
    # Per-epoch statistics with the weights of each epoch; empty when only totals are
    # known (input version 1), and then the split is checked against ``weight``.
    epochs: tuple[Epoch, ...] = ()
    # Which metrics the tests read per unit (a user) rather than per request.
    analysis_unit: AnalysisUnit = field(default_factory=AnalysisUnit)
    # Shadows scored on the same labelled requests as the live model (paired).
    shadows: tuple[ShadowData, ...] = ()

    @property
    def champion(self) -> VariantData:
        """The variant with role champion."""
        return next(v for v in self.variants if v.role == "champion")
