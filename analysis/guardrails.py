"""Guardrails as configured: each (metric, limit, value) checked against the champion.

A guardrail is a limit on how much worse an operational metric may get. Every
spec is checked on its own and names its own rule (``guardrail:<metric>``), so
a report lists each configured guardrail with its result and a verdict says
which one failed. How each metric is checked:

- ``error_rate``: the one-sided sequential test (``analysis.sequential.guardrail_test``)
  on errors per request. ``max_absolute_increase`` tests the difference of the
  rates; ``max_relative_increase`` (r) and ``max_ratio`` (1 + r) test the relative
  lift (delta method) against r. When the champion has recorded no errors the
  relative lift has no base, and the check tests the absolute difference with a
  margin of 0 instead: any increase over a champion with no errors is larger than
  any relative limit, and it must still be significant. When both arms have no
  variance (every request failed, or none did) the test is undefined; from
  ``MIN_DEGENERATE`` variant requests on, the observed rates are then compared
  directly, since the difference is certain rather than noise.
- ``mean_latency_ms``: the same sequential test on the answered requests' latency
  (``VariantData.latency_ms``), absolute in ms or relative to the champion's mean.
- ``p50/p95/p99_latency_ms``: ``analysis.latency.compare_latency`` at that quantile
  of the latency histograms: ``max_ratio``, ``max_relative_increase`` (ratio 1 + r)
  or ``max_absolute_increase`` (ms) on the interpolated quantiles, which are exact
  only to the bucket (the comparison reports the bucket-edge range). No test:
  a quantile's point estimate over the limit on >= 100 requests per arm fails.

Pure: statistics in, results out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from analysis.latency import LatencyComparison, compare_latency
from analysis.results import TestResult
from analysis.sequential import guardrail_test

if TYPE_CHECKING:
    from analysis.inputs import VariantData

__all__ = [
    "GUARDRAIL_LIMITS",
    "GUARDRAIL_METRICS",
    "MIN_DEGENERATE",
    "QUANTILE_METRICS",
    "GuardrailLimit",
    "GuardrailMetric",
    "GuardrailResult",
    "GuardrailSpec",
    "check_guardrail",
    "legacy_guardrails",
]

GuardrailMetric = Literal[
    "error_rate", "mean_latency_ms", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms"
]
GuardrailLimit = Literal["max_absolute_increase", "max_relative_increase", "max_ratio"]

GUARDRAIL_METRICS: tuple[GuardrailMetric, ...] = (
    "error_rate",
    "mean_latency_ms",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
)
GUARDRAIL_LIMITS: tuple[GuardrailLimit, ...] = (
    "max_absolute_increase",
    "max_relative_increase",
    "max_ratio",
)
QUANTILE_METRICS: dict[str, float] = {
    "p50_latency_ms": 0.5,
    "p95_latency_ms": 0.95,
    "p99_latency_ms": 0.99,
}
"""Latency quantile guardrails and the quantile each compares."""

MIN_DEGENERATE = 20
"""Variant requests before an error rate with no variance (all or none failed) is judged."""


@dataclass(frozen=True)
class GuardrailSpec:
    """One limit: ``metric`` may not get worse than ``value`` in the sense of ``limit``."""

    metric: GuardrailMetric
    limit: GuardrailLimit
    value: float

    def __post_init__(self) -> None:
        if self.metric not in GUARDRAIL_METRICS:
            raise ValueError(f"unknown guardrail metric {self.metric!r}")
        if self.limit not in GUARDRAIL_LIMITS:
            raise ValueError(f"unknown guardrail limit {self.limit!r}")
        floor = 1 if self.limit == "max_ratio" else 0
        if not math.isfinite(self.value) or self.value < floor:
            raise ValueError(f"{self.limit} must be finite and >= {floor}, got {self.value!r}")

    @property
    def rule(self) -> str:
        """The verdict rule this guardrail fires: ``guardrail:<metric>``."""
        return f"guardrail:{self.metric}"

    @property
    def relative(self) -> float | None:
        """The allowed relative increase r (``max_ratio`` is 1 + r); None for an absolute limit."""
        if self.limit == "max_absolute_increase":
            return None
        return self.value - 1.0 if self.limit == "max_ratio" else self.value

    @property
    def text(self) -> str:
        """The limit in words, e.g. ``+0.01 absolute``, ``×1.5``, ``+20 % relative``."""
        unit = " ms" if self.metric != "error_rate" else ""
        if self.limit == "max_absolute_increase":
            return f"+{self.value:g}{unit} absolute"
        if self.limit == "max_ratio":
            return f"×{self.value:g}"
        return f"+{100 * self.value:g} % relative"


def legacy_guardrails(
    max_error_rate_increase: float | None, max_p99_ratio: float | None
) -> tuple[GuardrailSpec, ...]:
    """The guardrails the two original settings keys describe (None: that guardrail is off)."""
    specs = []
    if max_error_rate_increase is not None:
        specs.append(GuardrailSpec("error_rate", "max_absolute_increase", max_error_rate_increase))
    if max_p99_ratio is not None:
        specs.append(GuardrailSpec("p99_latency_ms", "max_ratio", max_p99_ratio))
    return tuple(specs)


@dataclass(frozen=True)
class GuardrailResult:
    """One guardrail checked for one variant: failed, and the evidence.

    ``checked`` is False when the data could not say (too few requests, no
    latency recorded, an undefined test): that is never a pass, only "not yet".
    ``champion``/``variant`` are the compared values (rates, ms) or NaN.
    """

    spec: GuardrailSpec
    failed: bool
    checked: bool
    champion: float
    variant: float
    message: str
    test: TestResult | None = None
    latency: LatencyComparison | None = None
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def rule(self) -> str:
        """The verdict rule of this guardrail."""
        return self.spec.rule

    @property
    def status(self) -> Literal["failed", "ok", "not checked"]:
        """``failed``, ``ok``, or ``not checked`` (too little data, never a pass)."""
        if self.failed:
            return "failed"
        return "ok" if self.checked else "not checked"


def _spec_evidence(spec: GuardrailSpec) -> dict[str, Any]:
    return {"metric": spec.metric, "limit": spec.limit, "threshold": spec.value}


def _unchecked(spec: GuardrailSpec, message: str) -> GuardrailResult:
    """Not checked: the data to check it were not recorded."""
    return GuardrailResult(
        spec, False, False, math.nan, math.nan, message, evidence=_spec_evidence(spec)
    )


def _tested(
    spec: GuardrailSpec,
    result: TestResult,
    values: tuple[float, float],
    head: str,
    evidence: dict[str, Any],
    note: str = "",
) -> GuardrailResult:
    """Checked by a significance test: failed when it shows the limit broken."""
    word = "worse by more than" if result.significant else "not shown worse than"
    return GuardrailResult(
        spec,
        result.significant,
        True,
        *values,
        f"{head}: {word} {spec.text} (p={result.p_value:.4g}){note}",
        result,
        None,
        evidence,
    )


def _rate(errors: int, requests: int) -> float:
    return errors / requests if requests else 0.0


def _error_rate(
    spec: GuardrailSpec, champion: VariantData, variant: VariantData, alpha: float, tuning: float
) -> GuardrailResult:
    relative = spec.relative
    note = ""
    if relative is None:
        kind: Literal["absolute", "relative"] = "absolute"
        margin = spec.value
    elif champion.errors == 0:
        kind, margin = "absolute", 0.0
        note = (
            "; the champion has no errors, so the relative limit has no base: "
            "any significant increase fails"
        )
    else:
        kind, margin = "relative", relative
    result = guardrail_test(
        champion.error_stats,
        variant.error_stats,
        higher_is_better=False,
        margin=margin,
        difference_type=kind,
        alpha=alpha,
        tuning=tuning,
    )
    c_rate = _rate(champion.errors, champion.requests)
    v_rate = _rate(variant.errors, variant.requests)
    rates = f"error rate {v_rate:.4f} vs champion {c_rate:.4f}"
    evidence = {**_spec_evidence(spec), **result.evidence(), "tested_as": kind}
    if result.error:
        bound = c_rate + margin if kind == "absolute" else c_rate * (1.0 + margin)
        if variant.requests >= MIN_DEGENERATE and v_rate > bound:
            # Every request failed (or none did): zero variance leaves the test undefined,
            # but the difference is then certain, not noise.
            return GuardrailResult(
                spec,
                True,
                True,
                c_rate,
                v_rate,
                f"{rates} on {variant.requests} requests, over the limit {spec.text} "
                "(no variance: every outcome identical)",
                result,
                evidence={
                    **_spec_evidence(spec),
                    "samples": {"champion": champion.requests, "variant": variant.requests},
                    "error_rates": {"champion": c_rate, "variant": v_rate},
                },
            )
        # An arm with no requests leaves nothing to compare (not checked, never a pass).
        empty = [a.name for a in (champion, variant) if a.requests == 0]
        if empty:
            return _unchecked(
                spec, f"no requests recorded for {' and '.join(empty)} yet: nothing to compare"
            )
        # Identical outcomes with no errors anywhere leave nothing to fear.
        fine = v_rate <= c_rate
        message = result.message
        if fine:
            message = (
                "no errors in either arm" if v_rate == 0.0 else "every request failed in both arms"
            ) + ", so there is no increase to test"
        return GuardrailResult(
            spec, False, fine, c_rate, v_rate, f"{rates}: {message}", result, None, evidence
        )
    return _tested(spec, result, (c_rate, v_rate), rates, evidence, note)


def _mean_latency(
    spec: GuardrailSpec, champion: VariantData, variant: VariantData, alpha: float, tuning: float
) -> GuardrailResult:
    control, treatment = champion.latency_ms, variant.latency_ms
    if control is None or treatment is None:
        return _unchecked(
            spec, "no mean latency recorded (latency sum and sum of squares) for both arms"
        )
    relative = spec.relative
    result = guardrail_test(
        control,
        treatment,
        higher_is_better=False,
        margin=spec.value if relative is None else relative,
        difference_type="absolute" if relative is None else "relative",
        alpha=alpha,
        tuning=tuning,
    )
    means = f"mean latency {treatment.mean:.2f} ms vs champion {control.mean:.2f} ms"
    evidence = {**_spec_evidence(spec), **result.evidence()}
    if result.error:
        return GuardrailResult(
            spec,
            False,
            False,
            control.mean,
            treatment.mean,
            f"{means}: {result.message}",
            result,
            None,
            evidence,
        )
    return _tested(spec, result, (control.mean, treatment.mean), means, evidence)


def _quantile_latency(
    spec: GuardrailSpec, champion: VariantData, variant: VariantData
) -> GuardrailResult:
    q = QUANTILE_METRICS[spec.metric]
    if champion.latency is None or variant.latency is None:
        return _unchecked(spec, "no latency histogram recorded for both arms")
    relative = spec.relative
    comparison = compare_latency(
        champion.latency,
        variant.latency,
        q=q,
        max_ratio=None if relative is None else 1.0 + relative,
        max_increase=spec.value if relative is None else None,
    )
    return GuardrailResult(
        spec,
        comparison.worse,
        comparison.conclusive,
        comparison.champion,
        comparison.treatment,
        comparison.message,
        latency=comparison,
        evidence={
            **_spec_evidence(spec),
            "champion_ms": comparison.champion,
            "variant_ms": comparison.treatment,
            "ratio": comparison.ratio,
            "difference_ms": comparison.difference,
            "ratio_range": [comparison.ratio_low, comparison.ratio_high],
            "samples": {"champion": comparison.champion_n, "variant": comparison.treatment_n},
        },
    )


def check_guardrail(
    spec: GuardrailSpec,
    champion: VariantData,
    variant: VariantData,
    *,
    alpha: float = 0.05,
    tuning: float = 5000.0,
) -> GuardrailResult:
    """Check one guardrail of ``variant`` against ``champion`` (see the module docstring)."""
    if spec.metric == "error_rate":
        return _error_rate(spec, champion, variant, alpha, tuning)
    if spec.metric == "mean_latency_ms":
        return _mean_latency(spec, champion, variant, alpha, tuning)
    return _quantile_latency(spec, champion, variant)
