"""From statistics to a verdict per variant: promote, continue, rollback, inconclusive, hold.

Pure: takes the experiment's data and settings, returns verdicts that carry
their evidence (samples per arm, estimate, interval, p-value, threshold and
the rule that fired), so every promotion or rollback can be explained.

Order of the rules, first match wins:
1. ``srm``: a sample-ratio mismatch in any epoch (each epoch's counts against
   that epoch's weights, ``analysis.srm``) holds everything — the data cannot be trusted.
2. ``guardrail:<metric>``: the configured guardrails (``settings.active_guardrails``,
   checked by ``analysis.guardrails``) in the configured order: the first one
   failed → rollback at once, its evidence listing every failed one. None
   configured: none is checked.
3. How a guardrail fails: error rate and mean latency when shown worse than the
   limit (one-sided sequential test); p50/p95/p99 latency when the histogram's
   quantile is over the limit (``analysis.latency``).
4. ``min_samples``: fewer than ``min_samples`` outcomes of the primary metric
   in either arm → inconclusive (too little data is never a pass).
5. ``primary``: significantly better (after the multiple-testing correction)
   → promote; significantly worse → rollback. The test is always of the
   difference treatment − champion (``analysis.difference``), so the verdict's
   direction is the sign of that difference; a relative lift is reported
   beside it when the champion's mean is clearly above 0.
6. ``planned_sample``: the planned sample for the MDE is reached without a
   significant difference → inconclusive ("no effect of the planned size").
7. otherwise ``continue``, with the time to a decision at the current traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from analysis.difference import DifferenceChoice, default_difference, difference_test
from analysis.guardrails import GuardrailResult, check_guardrail
from analysis.inputs import ExperimentData, VariantData
from analysis.latency import LatencyComparison, compare_latency
from analysis.multiple_testing import adjust_p_values
from analysis.power import sample_size_per_arm, time_to_decision
from analysis.results import TestResult
from analysis.sequential import guardrail_test
from analysis.shadows import ShadowAnalysis, analyze_shadow, relative_margin
from analysis.srm import SrmResult, epoch_sample_ratio_mismatch, sample_ratio_mismatch
from analysis.stratified import Strata, stratify
from analysis.sufficient import SampleStatistic, VariantStats, is_proportion

__all__ = ["Analysis", "Verdict", "analyze", "split_check"]

Action = Literal["promote", "continue", "rollback", "inconclusive", "hold"]


@dataclass(frozen=True)
class Verdict:
    """The decision for one non-champion variant, with the evidence behind it."""

    variant: str
    action: Action
    rule: str
    reason: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VariantAnalysis:
    """Every test run for one variant against the champion."""

    variant: str
    primary: TestResult | None
    adjusted_p_value: float | None
    errors: TestResult
    latency: LatencyComparison | None
    required_per_arm: int | None
    time_to_decision_s: float | None
    time_to_decision: str
    # Which difference ``primary`` reports and why (a refused relative lift says so).
    difference: DifferenceChoice | None = None
    # Data from several epochs: ``primary`` is stratified by epoch and ``pooled`` is
    # the same test on all data pooled, for comparison (see ``analysis.stratified``).
    pooled: TestResult | None = None
    strata: Strata | None = None
    # Every configured guardrail, checked, in the configured order (empty: none set).
    # ``errors`` and ``latency`` above describe the error rate (margin 0) and p99
    # whatever is configured; only these decide.
    guardrails: tuple[GuardrailResult, ...] = ()


@dataclass(frozen=True)
class Analysis:
    """The whole result: SRM first, then per-variant tests and verdicts."""

    experiment: str
    test: str
    srm: SrmResult
    variants: tuple[VariantAnalysis, ...]
    verdicts: tuple[Verdict, ...]
    data: ExperimentData
    # The paired tests of every shadow (``analysis.shadows``), in the data's order.
    shadows: tuple[ShadowAnalysis, ...] = ()


def _evidence(
    result: TestResult, adjusted: float | None = None, choice: DifferenceChoice | None = None
) -> dict[str, Any]:
    evidence = {**result.evidence(), "adjusted_p_value": adjusted}
    if choice is not None:
        evidence["difference"] = {
            "tested": "absolute",
            "reported": choice.difference_type,
            "requested": choice.requested,
            "reason": choice.reason,
        }
    return evidence


@dataclass(frozen=True)
class PrimaryTest:
    """The primary metric's test, and how the data across epochs entered it."""

    result: TestResult | None
    choice: DifferenceChoice | None
    # With data from more than one epoch: the test on all data pooled, shown beside
    # the stratified one that decides (``analysis.stratified``); else None.
    pooled: TestResult | None = None
    strata: Strata | None = None


def _pick(
    metric: str, proportion: bool, per_unit: bool
) -> Callable[[VariantStats], SampleStatistic | None]:
    """How an epoch's statistic of ``metric`` is read: on the same unit as the totals."""

    def pick(stats: VariantStats) -> SampleStatistic | None:
        if metric not in stats.metrics:
            return None
        if per_unit:
            ratio = stats.unit_metric(metric)
            if ratio is None:
                return None
            return ratio.as_proportion() if proportion else ratio
        return stats.proportion(metric) if proportion else stats.metrics[metric]

    return pick


def _primary_test(data: ExperimentData, variant: VariantData) -> PrimaryTest:
    s = data.settings
    champion = data.champion
    control = champion.metrics.get(s.primary_metric)
    treatment = variant.metrics.get(s.primary_metric)
    if control is None or treatment is None:
        return PrimaryTest(None, None)

    def test(c: SampleStatistic, t: SampleStatistic) -> tuple[TestResult, DifferenceChoice]:
        return difference_test(
            c,
            t,
            difference=s.difference,
            sequential=s.sequential,
            alpha=s.alpha,
            tuning=float(s.tuning_n),
        )

    strata = None
    if len(data.epochs) > 1:
        versions = {champion.name: champion.model_version, variant.name: variant.model_version}
        per_unit = data.analysis_unit.of(s.primary_metric) == "unit"
        pick = _pick(s.primary_metric, is_proportion(control), per_unit)
        strata = stratify(data.epochs, champion.name, variant.name, pick, versions)
    if strata is None or strata.count < 2:
        return PrimaryTest(*test(control, treatment), strata=strata)
    pooled, _ = test(control, treatment)
    return PrimaryTest(*test(strata.control, strata.treatment), pooled=pooled, strata=strata)


def _required(data: ExperimentData) -> int | None:
    s = data.settings
    control = data.champion.metrics.get(s.primary_metric)
    if control is None or control.n < 2 or control.variance <= 0:
        return None
    try:
        # The MDE is on the configured scale (relative to the champion, or in the
        # metric's units), whatever a single look ends up reporting.
        return sample_size_per_arm(
            control.mean,
            control.variance,
            s.mde,
            difference_type=s.difference or default_difference(control),
            target_power=s.power,
            alpha=s.alpha,
            tuning=float(s.tuning_n) if s.sequential else None,
        ).n_per_arm
    except (ValueError, ZeroDivisionError):
        return None


def split_check(data: ExperimentData) -> SrmResult:
    """The sample-ratio check: each epoch against its own weights when the data has
    epochs, else (totals only) all requests against the variants' weights."""
    threshold = data.settings.srm_threshold
    if data.epochs:
        return epoch_sample_ratio_mismatch(data.epochs, threshold=threshold)
    return sample_ratio_mismatch(
        {v.name: v.requests for v in data.variants},
        {v.name: v.weight for v in data.variants},
        threshold=threshold,
    )


def analyze(data: ExperimentData) -> Analysis:
    """Run every test and decide every non-champion variant."""
    s = data.settings
    champion = data.champion
    challengers = [v for v in data.variants if v.role != "champion"]
    srm = split_check(data)
    tested = [_primary_test(data, v) for v in challengers]
    primaries = [t.result for t in tested]
    usable = [i for i, r in enumerate(primaries) if r is not None and not r.error]
    adjusted: list[float | None] = [None] * len(challengers)
    if usable:
        raw = [r.p_value for r in primaries if r is not None and not r.error]
        if s.correction == "none":
            corrected: tuple[float, ...] = tuple(raw)
        else:
            corrected = adjust_p_values(raw, method="holm" if s.correction == "holm" else "bh")
        for i, p in zip(usable, corrected, strict=True):
            adjusted[i] = p
    required = _required(data)
    rates = {v.name: v.requests / s.duration_s for v in data.variants} if s.duration_s else None
    analyses = []
    verdicts = []
    for variant, primary_test, adj in zip(challengers, tested, adjusted, strict=True):
        primary, choice = primary_test.result, primary_test.choice
        errors = guardrail_test(
            champion.error_stats,
            variant.error_stats,
            higher_is_better=False,
            difference_type="absolute",
            alpha=s.alpha,
            tuning=float(s.tuning_n),
        )
        latency = None
        if champion.latency is not None and variant.latency is not None:
            latency = compare_latency(champion.latency, variant.latency)
        guards = tuple(
            check_guardrail(spec, champion, variant, alpha=s.alpha, tuning=float(s.tuning_n))
            for spec in s.active_guardrails
        )
        ttd_s, ttd_text = None, "needs traffic rates (duration_s) to estimate"
        if required is not None and rates is not None and primary is not None:
            outcome = time_to_decision(
                required,
                {"champion": primary.control_n, variant.name: primary.treatment_n},
                {"champion": rates[champion.name], variant.name: rates[variant.name]},
            )
            ttd_s, ttd_text = outcome.seconds, outcome.message
        analyses.append(
            VariantAnalysis(
                variant.name,
                primary,
                adj,
                errors,
                latency,
                required,
                ttd_s,
                ttd_text,
                choice,
                pooled=primary_test.pooled,
                strata=primary_test.strata,
                guardrails=guards,
            )
        )
        verdicts.append(
            _decide(data, srm, variant, (primary, choice), adj, guards, required, ttd_text)
        )
    return Analysis(
        experiment=data.name,
        test=f"sequential (asymptotic confidence sequence, N*={s.tuning_n})"
        if s.sequential
        else "Welch's t-test (fixed horizon)",
        srm=srm,
        variants=tuple(analyses),
        verdicts=tuple(verdicts),
        data=data,
        shadows=tuple(
            analyze_shadow(
                shadow,
                alpha=s.alpha,
                sequential=s.sequential,
                tuning=float(s.tuning_n),
                margin=s.shadow_margin
                if s.shadow_margin_relative is None
                else relative_margin(s.shadow_margin_relative, shadow.counts),
            )
            for shadow in data.shadows
        ),
    )


def _decide(
    data: ExperimentData,
    srm: SrmResult,
    variant: VariantData,
    tested: tuple[TestResult | None, DifferenceChoice | None],
    adjusted: float | None,
    guards: tuple[GuardrailResult, ...],
    required: int | None,
    ttd: str,
) -> Verdict:
    s = data.settings
    name = variant.name
    primary, choice = tested
    if srm.mismatch:
        return Verdict(
            name,
            "hold",
            "srm",
            f"sample-ratio mismatch: {srm.message}",
            {
                "observed": dict(zip(srm.arms, srm.observed, strict=True)),
                "expected": dict(zip(srm.arms, srm.expected, strict=True)),
                "p_value": srm.p_value,
                "threshold": srm.threshold,
                "epochs": [c.epoch.label for c in srm.epochs if c.mismatch],
            },
        )
    failed = [g for g in guards if g.failed]
    if failed:
        first = failed[0]
        return Verdict(
            name,
            "rollback",
            first.rule,
            f"{first.spec.metric} over its guardrail ({first.spec.text}): {first.message}",
            {**first.evidence, "failed_guardrails": [g.rule for g in failed]},
        )
    if primary is None:
        return Verdict(
            name,
            "inconclusive",
            "no_metric",
            f"no '{s.primary_metric}' outcomes for this variant or the champion",
        )
    if min(primary.control_n, primary.treatment_n) < s.min_samples:
        return Verdict(
            name,
            "inconclusive",
            "min_samples",
            f"too little data: {primary.control_n} champion and {primary.treatment_n} {name} "
            f"outcomes, {s.min_samples} needed per arm",
            _evidence(primary, adjusted, choice),
        )
    if primary.error:
        return Verdict(
            name, "inconclusive", "primary", primary.message, _evidence(primary, None, choice)
        )
    p = adjusted if adjusted is not None else primary.p_value
    # The sign of the tested difference; a reported relative lift has the same sign,
    # since it is only reported on a champion mean clearly above 0.
    better = primary.estimate > 0 if s.direction == "increase" else primary.estimate < 0
    evidence = _evidence(primary, adjusted, choice)
    lift = _lift_text(primary, choice)
    if p < s.alpha:
        action: Action = "promote" if better else "rollback"
        word = "better" if better else "worse"
        return Verdict(
            name,
            action,
            "primary",
            f"{s.primary_metric} significantly {word}: {lift}, p={p:.4g} < {s.alpha:g}",
            evidence,
        )
    if required is not None and min(primary.control_n, primary.treatment_n) >= required:
        return Verdict(
            name,
            "inconclusive",
            "planned_sample",
            f"no significant difference at the planned {required} per arm "
            f"(MDE {s.mde:g}): {lift}, p={p:.4g}",
            {**evidence, "required_per_arm": required},
        )
    return Verdict(
        name,
        "continue",
        "primary",
        f"not significant yet: {lift}, p={p:.4g}; {ttd}",
        {**evidence, "required_per_arm": required},
    )


def _lift_text(result: TestResult, choice: DifferenceChoice | None) -> str:
    if result.difference_type == "relative":
        return f"{result.estimate:+.2%} [{result.ci_low:+.2%}, {result.ci_high:+.2%}]"
    note = f"; {choice.reason}" if choice is not None and choice.switched else ""
    return f"{result.estimate:+.4g} [{result.ci_low:+.4g}, {result.ci_high:+.4g}] (absolute{note})"
