"""Group-sequential boundaries: spotify/confidence's vector and an exact probability check."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from analysis.group_sequential import group_sequential_bounds
from tests.analysis._vectors import load

VECTOR = load("derived/spotify_confidence_gst_expected.json")


def _fractions() -> list[float]:
    given = VECTOR["input"]
    totals = [a + b for a, b in zip(given["count_1"], given["count_2"], strict=True)]
    denominator = max(max(totals), given["final_expected_sample_size"])
    return [total / denominator for total in totals]


def test_spotify_adjusted_alphas() -> None:
    bounds = group_sequential_bounds(_fractions(), alpha=VECTOR["input"]["alpha"], rho=2.0)
    assert bounds.adjusted_alpha == pytest.approx(
        VECTOR["expected_adjusted_alpha"], abs=VECTOR["tolerance_atol"]
    )
    assert bounds.z_bounds == pytest.approx(
        VECTOR["independent_reproduction"]["z_bounds"], abs=5e-4
    )


def test_crossing_probabilities_equal_the_alpha_spent() -> None:
    # Under H0, (Z_1..Z_k) is multivariate normal with corr sqrt(t_i/t_j); the chance of
    # crossing at any look up to k must be the alpha spent by then, alpha·t_k².
    fractions = np.array(_fractions())
    bounds = group_sequential_bounds(list(fractions), alpha=0.01)
    correlation = np.sqrt(
        np.minimum.outer(fractions, fractions) / np.maximum.outer(fractions, fractions)
    )
    for k in range(1, len(fractions) + 1):
        limits = np.array(bounds.z_bounds[:k])
        distribution = multivariate_normal(
            mean=np.zeros(k),
            cov=correlation[:k, :k],
            abseps=1e-9,
            releps=1e-9,
            maxpts=10**6,
            seed=1,
        )
        stay = distribution.cdf(limits, lower_limit=-limits)
        assert 1.0 - stay == pytest.approx(0.01 * fractions[k - 1] ** 2, abs=1e-6)


def test_single_look_is_the_plain_two_sided_bound() -> None:
    bounds = group_sequential_bounds([1.0], alpha=0.05)
    assert bounds.z_bounds[0] == pytest.approx(1.959963984540054, rel=1e-12)
    assert bounds.adjusted_alpha[0] == pytest.approx(0.05, rel=1e-12)


@pytest.mark.parametrize("fractions", [[], [0.5, 0.4], [0.0, 1.0], [0.5, 1.2]])
def test_invalid_fractions(fractions: list[float]) -> None:
    with pytest.raises(ValueError, match="information"):
        group_sequential_bounds(fractions)
