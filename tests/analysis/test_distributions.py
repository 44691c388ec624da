"""The numpy-only distribution functions agree with scipy."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from analysis._distributions import chi2_sf, normal_cdf, normal_ppf, t_cdf, t_ppf

DOFS = [1.0, 1.5, 2.0, 3.7, 10.0, 27.3, 100.0, 499.0, 500.0, 1000.0, 6000.0, 1e5, 1e7]
PROBABILITIES = np.array(
    [1e-8, 1e-5, 1e-3, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 0.9, 0.95, 0.975, 0.99, 0.999]
)


@pytest.mark.parametrize("dof", DOFS)
def test_t_cdf_matches_scipy(dof: float) -> None:
    t = np.concatenate([np.linspace(-40.0, 40.0, 801), [0.0, 1.7, -1.73, 1e-3]])
    expected = stats.t.cdf(t, dof)
    actual = t_cdf(t, dof)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-13)
    # The smaller tail is what a p-value uses: check it relatively, where it is not tiny.
    tail = np.minimum(expected, 1.0 - expected)
    ours = np.minimum(actual, 1.0 - actual)
    keep = tail > 1e-30
    np.testing.assert_allclose(ours[keep], tail[keep], rtol=1e-6)


def test_t_cdf_closed_forms() -> None:
    # dof 1 is the Cauchy distribution and dof 2 has a closed form too; near t = 0 these
    # are more precise than scipy, which rounds to 0.5 there.
    t = np.array([-1e3, -3.0, -1e-9, 0.0, 1e-9, 0.5, 7.0])
    np.testing.assert_allclose(t_cdf(t, 1.0), 0.5 + np.arctan(t) / np.pi, rtol=1e-12)
    root = np.sqrt(2 + t * t)
    # 0.5 + t/(2·root), rewritten for t < 0 so that it does not cancel.
    dof_2 = np.where(t < 0, 1.0 / (root * (root - t)), 0.5 + t / (2 * root))
    np.testing.assert_allclose(t_cdf(t, 2.0), dof_2, rtol=1e-12)


@pytest.mark.parametrize("dof", DOFS)
def test_t_ppf_matches_scipy(dof: float) -> None:
    np.testing.assert_allclose(
        t_ppf(PROBABILITIES, dof), stats.t.ppf(PROBABILITIES, dof), rtol=1e-9, atol=1e-12
    )


def test_t_functions_broadcast_and_keep_shape() -> None:
    assert t_cdf(2.0, 10.0).shape == ()
    assert t_ppf(0.975, [5.0, 10.0]).shape == (2,)
    grid = t_cdf(np.zeros((3, 4)), np.arange(1.0, 5.0))
    assert grid.shape == (3, 4)
    np.testing.assert_allclose(grid, 0.5)


def test_normal_matches_scipy() -> None:
    x = np.linspace(-9.0, 9.0, 1001)
    np.testing.assert_allclose(normal_cdf(x), stats.norm.cdf(x), rtol=1e-12, atol=0)
    np.testing.assert_allclose(
        normal_ppf(PROBABILITIES), stats.norm.ppf(PROBABILITIES), rtol=1e-12, atol=1e-14
    )


@pytest.mark.parametrize("dof", [1, 2, 3, 4, 7, 10, 50, 200])
def test_chi2_sf_matches_scipy(dof: int) -> None:
    for statistic in [0.0, 1e-3, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 100.0, 300.0, 1000.0]:
        assert chi2_sf(statistic, dof) == pytest.approx(
            stats.chi2.sf(statistic, dof), rel=1e-10, abs=1e-300
        )


def test_chi2_sf_rejects_zero_dof() -> None:
    with pytest.raises(ValueError, match="dof"):
        chi2_sf(1.0, 0)
