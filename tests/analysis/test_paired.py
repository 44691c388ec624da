"""Paired shadow tests against statsmodels and scipy; edge cases; bad counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

from analysis._distributions import binomial_cdf
from analysis.paired import (
    MCNEMAR_EXACT,
    PAIRED_SEQUENTIAL_CS,
    PairedCounts,
    mcnemar_chi_square,
    mcnemar_exact,
    paired_difference,
    paired_harm_test,
    paired_mean_sequential_test,
    paired_non_inferiority_test,
    paired_sequential_p_values,
    paired_sequential_test,
    paired_t_test,
    paired_z_p_values,
    paired_z_test,
)
from analysis.results import Alternative
from analysis.sequential import sequential_halfwidth, sequential_test
from analysis.sufficient import MetricStats

# (both, live_only, shadow_only, neither): small, lopsided, tied-ish, large.
COUNTS = [
    PairedCounts(800, 40, 62, 98),
    PairedCounts(12, 1, 7, 3),
    PairedCounts(50, 9, 8, 20),
    PairedCounts(0, 3, 0, 5),
    PairedCounts(40_000, 2_480, 2_390, 5_130),
    PairedCounts(3, 250, 210, 1),
]


def _table(c: PairedCounts) -> list[list[int]]:
    # statsmodels reads the off-diagonal cells [0][1] and [1][0]; which is which only
    # matters for the sign, which its two-sided tests do not report.
    return [[c.both, c.live_only], [c.shadow_only, c.neither]]


def _differences(c: PairedCounts) -> tuple[np.ndarray, np.ndarray]:
    """Per-request (shadow right, live right) as 0/1 arrays."""
    shadow = np.repeat([1, 0, 1, 0], [c.both, c.live_only, c.shadow_only, c.neither])
    live = np.repeat([1, 1, 0, 0], [c.both, c.live_only, c.shadow_only, c.neither])
    return shadow.astype(float), live.astype(float)


@pytest.mark.parametrize("counts", COUNTS)
def test_mcnemar_exact_matches_statsmodels(counts: PairedCounts) -> None:
    expected = mcnemar(_table(counts), exact=True)
    result = mcnemar_exact(counts)
    assert result.test == MCNEMAR_EXACT
    assert result.statistic == expected.statistic
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("correction", [True, False])
@pytest.mark.parametrize("counts", COUNTS)
def test_mcnemar_chi_square_matches_statsmodels(counts: PairedCounts, correction: bool) -> None:
    expected = mcnemar(_table(counts), exact=False, correction=correction)
    result = mcnemar_chi_square(counts, correction=correction)
    assert result.correction is correction
    assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("counts", COUNTS)
def test_mcnemar_exact_is_scipys_binomial_test(counts: PairedCounts, alternative: str) -> None:
    expected = stats.binomtest(counts.shadow_only, counts.discordant, 0.5, alternative=alternative)
    result = mcnemar_exact(counts, alternative=alternative)  # type: ignore[arg-type]
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-10, abs=1e-15)


def test_binomial_cdf_matches_scipy() -> None:
    for n in (1, 2, 7, 40, 101, 1_000, 100_000):
        k = np.unique(np.linspace(-2, n + 2, 41).round())
        for p in (0.5, 0.1, 0.93):
            expected = stats.binom.cdf(k, n, p)
            actual = binomial_cdf(k, n, p)
            np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-300)
    assert binomial_cdf(0, 0, 0.5) == 1.0
    with pytest.raises(ValueError, match="p must be"):
        binomial_cdf(1, 2, 1.0)


def test_uncorrected_chi_square_is_the_wald_statistic_with_the_null_variance() -> None:
    # McNemar's uncorrected statistic is the score test: (s − l)²/(s + l) is z² with the
    # variance taken under H0 (no (s − l)²/n term). Tie the two together.
    for counts in COUNTS[:3] + COUNTS[4:]:
        z = paired_z_test(counts)
        wald = ((z.estimate - 0.0) / z.stddev) ** 2
        s, lo, n = counts.shadow_only, counts.live_only, counts.n
        assert mcnemar_chi_square(counts, correction=False).statistic == pytest.approx(
            wald * (1 - (s - lo) ** 2 / (n * (s + lo))), rel=1e-12
        )


@pytest.mark.parametrize("counts", [c for c in COUNTS if c.discordant < c.n])
def test_paired_z_is_ttest_rel_with_the_one_over_n_variance(counts: PairedCounts) -> None:
    shadow, live = _differences(counts)
    expected = stats.ttest_rel(shadow, live)
    result = paired_z_test(counts)
    n = counts.n
    assert result.estimate == pytest.approx(float(np.mean(shadow - live)), abs=1e-15)
    # ttest_rel divides by n − 1: its t is the Wald z times sqrt((n − 1)/n).
    z = result.estimate / result.stddev
    assert expected.statistic == pytest.approx(z * math.sqrt((n - 1) / n), rel=1e-12)
    assert result.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-10)
    half = stats.norm.ppf(0.975) * result.stddev
    assert result.ci == pytest.approx((result.estimate - half, result.estimate + half), rel=1e-12)
    assert result.control_mean == pytest.approx(float(live.mean()))
    assert result.treatment_mean == pytest.approx(float(shadow.mean()))
    assert result.control_n == result.treatment_n == n


def test_difference_and_variance_formula() -> None:
    estimate, variance = paired_difference(40, 62, 1000)
    assert float(estimate) == pytest.approx(0.022)
    assert float(variance) == pytest.approx((102 - 22**2 / 1000) / 1000**2, rel=1e-14)
    # The same variance as the mean of the per-request differences (1/n variance of d).
    shadow, live = _differences(COUNTS[0])
    assert float(variance) == pytest.approx(np.var(shadow - live) / 1000, rel=1e-12)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("counts", [c for c in COUNTS if c.discordant < c.n])
def test_paired_t_matches_ttest_rel(counts: PairedCounts, alternative: Alternative) -> None:
    shadow, live = _differences(counts)
    expected = stats.ttest_rel(shadow, live, alternative=alternative)
    result = paired_t_test(counts.differences, alternative=alternative)
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)
    assert result.dof == expected.df
    interval = expected.confidence_interval(0.95)
    assert result.ci == pytest.approx((interval.low, interval.high), rel=1e-9)


def test_paired_t_on_numeric_differences_matches_ttest_rel() -> None:
    rng = np.random.default_rng(3)
    live = rng.gamma(2.0, 3.0, size=400)
    shadow = live + rng.normal(0.25, 1.5, size=400)
    differences = MetricStats.from_values(shadow - live)
    for null in (0.0, 0.5):
        expected = stats.ttest_rel(shadow - null, live)
        result = paired_t_test(differences, null=null, live_mean=float(live.mean()))
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert (result.estimate - null) / result.stddev == pytest.approx(
            expected.statistic, rel=1e-10
        )
    assert result.treatment_mean == pytest.approx(float(shadow.mean()), rel=1e-12)


def test_sequential_uses_the_engines_confidence_sequence_with_n_units() -> None:
    counts = COUNTS[0]
    estimate, variance = paired_difference(counts.live_only, counts.shadow_only, counts.n)
    result = paired_sequential_test(counts, tuning=1000)
    assert result.test == PAIRED_SEQUENTIAL_CS and result.sequential_tuning == 1000
    half = float(sequential_halfwidth(variance, np.float64(counts.n), tuning=1000))
    assert result.ci == pytest.approx((estimate - half, estimate + half), rel=1e-12)
    # Wider than the fixed-horizon interval: the price of looking at every batch.
    assert (
        result.ci_high - result.ci_low
        > paired_z_test(counts).ci_high - paired_z_test(counts).ci_low
    )


def test_sequential_on_paired_differences_is_narrower_than_two_samples() -> None:
    # The same 2 × 1000 answers read as two independent arms give a wider interval: the
    # variance of the difference is 0.0995/n paired against (0.84·0.16 + 0.862·0.138)/n.
    counts = COUNTS[0]
    paired = paired_sequential_test(counts, tuning=2000)
    shadow, live = _differences(counts)
    two = sequential_test(
        MetricStats.from_values(live),
        MetricStats.from_values(shadow),
        difference_type="absolute",
        tuning=2000,
    )
    assert paired.estimate == pytest.approx(two.estimate)
    assert paired.stddev / two.stddev == pytest.approx(
        math.sqrt((0.102 - 0.022**2) / (0.84 * 0.16 + 0.862 * 0.138)), rel=1e-3
    )
    assert (paired.ci_high - paired.ci_low) < 0.7 * (two.ci_high - two.ci_low)


@pytest.mark.parametrize("alternative", ["two-sided", "greater", "less"])
@pytest.mark.parametrize("null", [-0.02, 0.0, 0.01])
def test_p_value_below_alpha_exactly_when_the_sequence_excludes_null(
    alternative: Alternative, null: float
) -> None:
    for shadow_only in range(20, 110, 7):
        counts = PairedCounts(800, 60, shadow_only, 100)
        result = paired_sequential_test(counts, alternative=alternative, null=null, tuning=1000)
        excludes = result.ci_low > null or result.ci_high < null
        assert result.significant == excludes, (shadow_only, result)


def test_numeric_sequential_agrees_with_counts_up_to_the_variance_denominator() -> None:
    counts = COUNTS[4]
    by_counts = paired_sequential_test(counts)
    by_sums = paired_mean_sequential_test(counts.differences)
    n = counts.n
    assert by_sums.estimate == pytest.approx(by_counts.estimate)
    # The numeric form uses the n − 1 variance of d; the counts form the 1/n one.
    assert by_sums.stddev == pytest.approx(by_counts.stddev * math.sqrt(n / (n - 1)), rel=1e-12)


def test_non_inferiority_and_harm() -> None:
    better = PairedCounts(8_000, 400, 450, 1_150)  # +0.5 points
    worse = PairedCounts(8_000, 600, 400, 1_000)  # −2 points
    passed = paired_non_inferiority_test(better, margin=0.01, tuning=10_000)
    assert passed.significant and passed.ci_low > -0.01 and passed.ci_high == math.inf
    assert passed.alternative == "greater" and passed.null == -0.01
    assert not paired_harm_test(better, tuning=10_000).significant
    harmed = paired_harm_test(worse, margin=0.0, tuning=10_000)
    assert harmed.significant and harmed.ci_high < 0.0 and harmed.ci_low == -math.inf
    assert not paired_non_inferiority_test(worse, margin=0.01, tuning=10_000).significant
    # A tighter margin than the evidence supports is not passed.
    assert not paired_non_inferiority_test(better, margin=0.0, tuning=10_000).significant
    # Fixed-horizon forms too: the z test's one-sided bound.
    fixed = paired_non_inferiority_test(better, margin=0.01, sequential=False)
    assert fixed.test == "paired_z" and fixed.significant
    assert fixed.ci_low > passed.ci_low
    with pytest.raises(ValueError, match="margin"):
        paired_non_inferiority_test(better, margin=-0.01)
    with pytest.raises(ValueError, match="margin"):
        paired_harm_test(better, margin=1.5)


def test_no_discordant_pairs_is_no_evidence() -> None:
    counts = PairedCounts(900, 0, 0, 100)
    for result in (mcnemar_exact(counts), mcnemar_chi_square(counts)):
        assert result.p_value == 1.0 and not result.significant
        assert result.statistic == 0.0 and "only one of the two" in result.message
    for test in (paired_z_test, paired_sequential_test, paired_non_inferiority_test):
        result = test(counts, margin=0.01) if test is paired_non_inferiority_test else test(counts)
        assert result.error and not result.significant
        assert result.p_value == 1.0 and "no variance" in result.message
        assert result.control_mean == pytest.approx(0.9)


def test_a_paired_test_that_cannot_run_shows_both_sides_of_its_pairs() -> None:
    # Both sizes are the number of pairs; the means are the live model's and the shadow's.
    counts = PairedCounts(0, 0, 12, 0)  # the shadow alone right every time: no variance
    result = paired_sequential_test(counts, tuning=1234.0)
    assert result.error and result.test == PAIRED_SEQUENTIAL_CS
    assert (result.control_n, result.treatment_n) == (12, 12)
    assert (result.control_mean, result.treatment_mean) == (0.0, 1.0)
    assert result.difference_type == "absolute" and result.sequential_tuning == 1234.0
    means = paired_t_test(MetricStats(1, 0.5, 0.25), live_mean=2.0)
    assert (means.control_n, means.treatment_n) == (1, 1)
    assert (means.control_mean, means.treatment_mean) == (2.0, 2.5)
    assert (means.estimate, means.ci_low, means.ci_high, means.dof) == (0.0, 0.0, 0.0, 0.0)


def test_all_discordant_one_way() -> None:
    counts = PairedCounts(0, 0, 12, 0)
    exact = mcnemar_exact(counts)
    assert exact.p_value == pytest.approx(2 * 0.5**12) and exact.significant
    assert exact.difference == 1.0
    assert mcnemar_chi_square(counts).significant
    z = paired_z_test(counts)
    assert z.error and "shadow was the only one right" in z.message and "exact" in z.message
    # With some concordant pairs there is a variance, and the tests run.
    some = PairedCounts(88, 0, 12, 0)
    result = paired_z_test(some)
    assert not result.error and result.significant and result.estimate == pytest.approx(0.12)
    assert mcnemar_exact(PairedCounts(5, 9, 0, 5)).significant


def test_nothing_yet() -> None:
    counts = PairedCounts(0, 0, 0, 0)
    assert mcnemar_exact(counts).p_value == 1.0 and mcnemar_exact(counts).message
    assert mcnemar_chi_square(counts, correction=False).p_value == 1.0
    for result in (
        paired_z_test(counts),
        paired_sequential_test(counts),
        paired_harm_test(counts),
        paired_t_test(counts.differences),
        paired_mean_sequential_test(counts.differences),
    ):
        assert result.error and result.p_value == 1.0 and not math.isnan(result.estimate)
        assert "no" in result.message and "yet" in result.message
    assert paired_t_test(MetricStats(1, 0.5, 0.25)).message.startswith("only 1")
    assert "same" in paired_t_test(MetricStats(5, 1.0, 0.2)).message


def test_tie_in_the_corrected_chi_square_is_no_deviation() -> None:
    # statsmodels' (|0| − 1)² would report 1/discordant here; a tie is no deviation.
    result = mcnemar_chi_square(PairedCounts(10, 5, 5, 10))
    assert result.statistic == 0.0 and result.p_value == 1.0


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("both", -1, "both must be >= 0"),
        ("live_only", 2.5, "live_only must be an integer"),
        ("shadow_only", float("nan"), "shadow_only must be an integer"),
        ("neither", "3", "neither must be an integer"),
        ("live_only", True, "live_only must be an integer"),
    ],
)
def test_bad_counts_name_the_field(field: str, value: object, message: str) -> None:
    fields: dict[str, object] = {"both": 1, "live_only": 2, "shadow_only": 3, "neither": 4}
    fields[field] = value
    with pytest.raises(ValueError, match=message):
        PairedCounts(**fields)  # type: ignore[arg-type]


def test_counts_accept_integral_floats_and_add() -> None:
    counts = PairedCounts(10.0, 2, 3, 5)  # type: ignore[arg-type]
    assert counts.both == 10 and isinstance(counts.both, int)
    total = counts + PairedCounts(1, 1, 1, 1)
    assert total == PairedCounts(11, 3, 4, 6) and total.n == 24
    assert counts.differences == MetricStats(20, 1.0, 5.0)


def test_counts_from_outcomes() -> None:
    live = [True, True, False, False, True]
    shadow = [True, False, True, False, True]
    assert PairedCounts.from_outcomes(live, shadow) == PairedCounts(2, 1, 1, 1)
    with pytest.raises(ValueError, match="differ in length"):
        PairedCounts.from_outcomes(live, shadow[:3])


def test_bad_settings_raise() -> None:
    counts = COUNTS[0]
    with pytest.raises(ValueError, match="alpha"):
        paired_z_test(counts, alpha=1.5)
    with pytest.raises(ValueError, match="null"):
        paired_sequential_test(counts, null=2.0)
    with pytest.raises(ValueError, match="tuning"):
        paired_sequential_test(counts, tuning=0)
    with pytest.raises(ValueError, match="one-sided"):
        paired_harm_test(counts, alpha=0.6)
    for test in (mcnemar_exact, paired_z_test, paired_sequential_test):
        with pytest.raises(ValueError, match="alternative"):
            test(counts, alternative="bigger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alternative"):
        paired_t_test(counts.differences, alternative="bigger")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="alternative"):
        paired_mean_sequential_test(counts.differences, alternative="up")  # type: ignore[arg-type]


def test_vectorised_p_values_match_the_single_tests() -> None:
    rows = [c for c in COUNTS] + [PairedCounts(9, 0, 0, 1), PairedCounts(0, 0, 0, 0)]
    live = np.array([c.live_only for c in rows], dtype=float)
    shadow = np.array([c.shadow_only for c in rows], dtype=float)
    n = np.array([c.n for c in rows], dtype=float)
    for alternative in ("two-sided", "greater", "less"):
        seq = paired_sequential_p_values(live, shadow, n, alternative=alternative, null=-0.005)
        z = paired_z_p_values(live, shadow, n, alternative=alternative, null=-0.005)
        for i, c in enumerate(rows):
            one = paired_sequential_test(c, alternative=alternative, null=-0.005)
            assert seq[i] == pytest.approx(one.p_value, rel=1e-12)
            fixed = paired_z_test(c, alternative=alternative, null=-0.005)
            assert z[i] == pytest.approx(fixed.p_value, rel=1e-12)
