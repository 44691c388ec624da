"""The difference a verdict tests and the relative lift beside it: verdicts, formulas, defaults.

The verdict cases go through the real analysis path (``analysis.decisions.analyze``
on ``ExperimentData``); the formulas are checked against scipy and statsmodels on
fixed inputs.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from analysis.decisions import analyze
from analysis.difference import (
    choose_difference,
    critical_value,
    difference_test,
    fieller_lift_interval,
)
from analysis.inputs import AnalysisSettings, ExperimentData, VariantData, experiment_from_json
from analysis.sufficient import MetricStats, Moments, ProportionStats

N = 5000


def mean_stats(mean: float, sd: float = 1.0, n: int = N) -> MetricStats:
    """Statistics of n values with exactly this mean and sample standard deviation."""
    return MetricStats(n, n * mean, n * mean**2 + (n - 1) * sd**2)


def mean_experiment(champion: float, challenger: float, **settings: object) -> ExperimentData:
    variants = tuple(
        VariantData(
            name=name,
            role=role,
            weight=50,
            requests=N,
            metrics={"score": mean_stats(mean)},
        )
        for name, role, mean in (
            ("champion", "champion", champion),
            ("challenger", "challenger", challenger),
        )
    )
    base = {"primary_metric": "score", "direction": "increase", "max_p99_ratio": None}
    return ExperimentData("scores", variants, AnalysisSettings(**{**base, **settings}))  # type: ignore[arg-type]


def only_verdict(data: ExperimentData):  # type: ignore[no-untyped-def]
    (verdict,) = analyze(data).verdicts
    return verdict


@pytest.mark.parametrize("sequential", [True, False])
@pytest.mark.parametrize(
    ("champion", "challenger"),
    [(-1.0, 0.5), (-0.2, -0.1), (0.0, 0.3), (0.02, 0.3)],
)
def test_a_clearly_higher_mean_is_promoted_whatever_the_baseline(
    champion: float, challenger: float, sequential: bool
) -> None:
    # Delta-method relative lifts gave: rollback ("-150 %"), rollback, inconclusive
    # (relative lift undefined at 0) and continue (p ~ 0.2 where scipy says 4e-44).
    verdict = only_verdict(mean_experiment(champion, challenger, sequential=sequential))
    assert (verdict.action, verdict.rule) == ("promote", "primary"), verdict.reason
    evidence = verdict.evidence
    assert evidence["difference_type"] == "absolute"
    assert evidence["estimate"] == pytest.approx(challenger - champion)
    assert evidence["difference"]["tested"] == "absolute"
    welch = scipy_stats.ttest_ind_from_stats(challenger, 1.0, N, champion, 1.0, N, equal_var=False)
    if not sequential:
        assert evidence["p_value"] == pytest.approx(welch.pvalue, rel=1e-6, abs=1e-300)


@pytest.mark.parametrize(("champion", "challenger"), [(0.5, -1.0), (-0.1, -0.2), (0.3, 0.0)])
def test_a_clearly_lower_mean_is_rolled_back(champion: float, challenger: float) -> None:
    verdict = only_verdict(mean_experiment(champion, challenger))
    assert (verdict.action, verdict.rule) == ("rollback", "primary"), verdict.reason


def test_direction_decrease_follows_the_sign_of_the_difference() -> None:
    verdict = only_verdict(mean_experiment(-1.0, 0.5, direction="decrease"))
    assert verdict.action == "rollback", verdict.reason
    verdict = only_verdict(mean_experiment(0.5, -1.0, direction="decrease"))
    assert verdict.action == "promote", verdict.reason


def test_a_requested_relative_lift_on_a_negative_champion_is_refused_with_the_reason() -> None:
    verdict = only_verdict(mean_experiment(-1.0, 0.5, difference="relative"))
    assert verdict.action == "promote"
    difference = verdict.evidence["difference"]
    assert (difference["requested"], difference["reported"]) == ("relative", "absolute")
    assert "<= 0" in difference["reason"]
    assert difference["reason"] in verdict.reason


def test_a_requested_relative_lift_on_a_champion_near_zero_is_refused_with_the_reason() -> None:
    # 0.02 ± 0.03 includes 0: the ratio's interval would be unbounded.
    verdict = only_verdict(mean_experiment(0.02, 0.3, difference="relative"))
    assert verdict.action == "promote"
    difference = verdict.evidence["difference"]
    assert difference["reported"] == "absolute"
    assert "includes 0" in difference["reason"]


def test_a_requested_relative_lift_on_a_positive_champion_is_reported_with_fieller() -> None:
    verdict = only_verdict(mean_experiment(2.0, 2.1, difference="relative", sequential=False))
    assert verdict.action == "promote"
    evidence = verdict.evidence
    assert evidence["difference"]["reported"] == "relative"
    assert evidence["estimate"] == pytest.approx(0.05)
    low, high = evidence["ci"]
    assert 0.0 < low < 0.05 < high
    # The p-value is the difference's, however the effect is reported.
    absolute = only_verdict(mean_experiment(2.0, 2.1, sequential=False)).evidence
    assert evidence["p_value"] == absolute["p_value"]


def test_proportions_default_to_relative_and_switch_near_zero() -> None:
    clear = ProportionStats(5000, 500.0)
    assert choose_difference(None, clear, critical=3.0).difference_type == "relative"
    rare = ProportionStats(5000, 3.0)  # 0.0006 ± 3 × 0.00035: includes 0
    choice = choose_difference(None, rare, critical=3.0)
    assert choice.difference_type == "absolute" and "includes 0" in choice.reason
    assert not choice.switched  # the default, not a refused request
    assert choose_difference("relative", rare, critical=3.0).switched
    assert choose_difference(None, mean_stats(5.0), critical=3.0).difference_type == "absolute"


def test_settings_difference_is_read_from_json_and_checked() -> None:
    data = {
        "settings": {"difference": "absolute"},
        "variants": [
            {"name": "a", "metrics": {"m": {"type": "proportion", "n": 10, "sum": 5}}},
            {"name": "b", "metrics": {"m": {"type": "proportion", "n": 10, "sum": 5}}},
        ],
    }
    assert experiment_from_json(data).settings.difference == "absolute"
    data["settings"] = {"difference": "ratio"}
    with pytest.raises(ValueError, match=r"settings\.difference"):
        experiment_from_json(data)


def test_absolute_welch_matches_statsmodels_compare_means() -> None:
    rng = np.random.default_rng(7)
    control, treatment = rng.normal(1.0, 1.0, 400), rng.normal(1.2, 2.0, 300)
    result, choice = difference_test(
        MetricStats.from_values(control),
        MetricStats.from_values(treatment),
        difference="absolute",
        sequential=False,
    )
    assert choice.difference_type == "absolute"
    compare = CompareMeans(DescrStatsW(treatment), DescrStatsW(control))
    low, high = compare.tconfint_diff(alpha=0.05, usevar="unequal")
    _, p_value, _ = compare.ttest_ind(usevar="unequal")
    assert result.estimate == pytest.approx(treatment.mean() - control.mean(), rel=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx((low, high), rel=1e-9)
    assert result.p_value == pytest.approx(p_value, rel=1e-9)


@pytest.mark.parametrize("sequential", [False, True])
def test_fieller_bounds_are_where_the_scaled_welch_statistic_reaches_the_critical_value(
    sequential: bool,
) -> None:
    control, treatment = mean_stats(2.0, 1.5, 800), mean_stats(2.3, 2.5, 600)
    result, choice = difference_test(
        control, treatment, difference="relative", sequential=sequential
    )
    assert choice.difference_type == "relative"
    absolute, _ = difference_test(control, treatment, difference="absolute", sequential=sequential)
    critical = critical_value(absolute)
    assert result.p_value == absolute.p_value
    if not sequential:
        v_t, v_c = 2.5**2 / 600, 1.5**2 / 800
        dof = (v_t + v_c) ** 2 / (v_t**2 / 599 + v_c**2 / 799)
        assert absolute.p_value == pytest.approx(
            scipy_stats.ttest_ind_from_stats(2.3, 2.5, 600, 2.0, 1.5, 800, equal_var=False).pvalue,
            rel=1e-9,
        )
        assert critical == pytest.approx(scipy_stats.t.ppf(0.975, dof), rel=1e-9)
    # At each bound rho = 1 + lift, treatment against the champion scaled by rho is
    # exactly `critical` standard errors away: scipy's Welch statistic says so.
    for bound, sign in ((result.ci_low, 1.0), (result.ci_high, -1.0)):
        rho = 1.0 + bound
        scaled = scipy_stats.ttest_ind_from_stats(
            2.3, 2.5, 600, rho * 2.0, rho * 1.5, 800, equal_var=False
        )
        assert scaled.statistic == pytest.approx(sign * critical, rel=1e-9)
    assert result.estimate == pytest.approx(2.3 / 2.0 - 1.0)


@pytest.mark.parametrize("sequential", [False, True])
def test_the_relative_interval_excludes_zero_exactly_when_the_test_rejects(
    sequential: bool,
) -> None:
    control = ProportionStats(3000, 300.0)
    seen = set()
    for successes in range(230, 380, 3):
        result, choice = difference_test(
            control, ProportionStats(3000, float(successes)), sequential=sequential
        )
        assert choice.difference_type == "relative"
        excludes = result.ci_low > 0.0 or result.ci_high < 0.0
        assert excludes == (result.p_value < result.alpha), successes
        seen.add(excludes)
    assert seen == {True, False}


def test_fieller_interval_is_unbounded_when_the_champion_mean_is_not_clearly_positive() -> None:
    control = Moments.of(mean_stats(0.02))
    treatment = Moments.of(mean_stats(0.3))
    low, high = fieller_lift_interval(control, treatment, 1.96)
    assert np.isnan(low) and np.isnan(high)


def test_reports_show_the_difference_and_a_refused_relative_lift() -> None:
    from analysis.report import render

    data = mean_experiment(-1.0, 0.5, difference="relative")
    markdown = render(data, "md")
    assert "absolute lift" in markdown
    assert "no relative lift on a champion mean of -1" in markdown
    assert "a 2.0% relative lift (the MDE)" in markdown  # planned on the requested scale
    assert "an absolute difference of 0.02 (the MDE)" in render(mean_experiment(-1.0, 0.5), "md")
    report = json.loads(render(data, "json"))
    (verdict,) = report["verdicts"]
    assert verdict["action"] == "promote"
    assert verdict["evidence"]["difference"]["reported"] == "absolute"
    (variant,) = report["variants"]
    assert variant["primary"]["difference"]["requested"] == "relative"
    assert "<= 0" in variant["primary"]["difference"]["reason"]
    assert "<svg" in render(data, "html")


def test_version_2_input_carries_the_difference_setting() -> None:
    def arm(mean: float) -> dict[str, object]:
        stats = mean_stats(mean)
        return {
            "requests": N,
            "metrics": {
                "score": {
                    "type": "mean",
                    "n": N,
                    "sum": stats.sum,
                    "sum_squares": stats.sum_squares,
                }
            },
        }

    data = experiment_from_json(
        {
            "schema_version": 2,
            "settings": {"primary_metric": "score", "difference": "relative"},
            "variants": [{"name": "champion"}, {"name": "canary"}],
            "epochs": [
                {
                    "weights": {"champion": 50, "canary": 50},
                    "variants": {"champion": arm(-1.0), "canary": arm(0.5)},
                }
            ],
        }
    )
    assert data.settings.difference == "relative"
    verdict = only_verdict(data)
    assert verdict.action == "promote"
    assert verdict.evidence["difference"]["reported"] == "absolute"
