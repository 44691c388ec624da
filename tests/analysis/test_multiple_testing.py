"""Holm and Benjamini–Hochberg: GrowthBook's vectors and statsmodels."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from statsmodels.stats.multitest import multipletests

from analysis.multiple_testing import (
    AdjustmentMethod,
    adjust_p_values,
    benjamini_hochberg,
    holm,
)
from tests.analysis._vectors import load

CASES = load("growthbook/shared_expected.json")["multiple_testing"]["cases"]


@pytest.mark.parametrize("case", CASES, ids=[case["test"] for case in CASES])
def test_growthbook_vectors(case: dict[str, Any]) -> None:
    method: AdjustmentMethod = "holm" if case["method"] == "holm" else "bh"
    adjusted = adjust_p_values(case["input_pvalues"], method)
    assert adjusted == pytest.approx(case["expected_in_input_order"], abs=1e-8)


p_value_lists = st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=40)


@given(p_value_lists)
def test_holm_matches_statsmodels(p_values: list[float]) -> None:
    expected = multipletests(p_values, method="holm")[1]
    np.testing.assert_allclose(holm(p_values), expected, rtol=1e-12, atol=1e-15)


@given(p_value_lists)
def test_bh_matches_statsmodels(p_values: list[float]) -> None:
    expected = multipletests(p_values, method="fdr_bh")[1]
    np.testing.assert_allclose(benjamini_hochberg(p_values), expected, rtol=1e-12, atol=1e-15)


def test_holm_is_not_holm_sidak() -> None:
    # statsmodels' default is Holm–Šidák; the report must use plain Holm.
    p_values = [0.01, 0.02, 0.03]
    assert holm(p_values) == pytest.approx(multipletests(p_values, method="holm")[1])
    assert holm(p_values) != pytest.approx(multipletests(p_values)[1])


def test_empty_and_invalid() -> None:
    assert holm([]) == ()
    with pytest.raises(ValueError, match="between 0 and 1"):
        holm([0.5, 1.2])
    with pytest.raises(ValueError, match="between 0 and 1"):
        benjamini_hochberg([float("nan")])
    with pytest.raises(ValueError, match="method"):
        adjust_p_values([0.1], "bonferroni")  # type: ignore[arg-type]
