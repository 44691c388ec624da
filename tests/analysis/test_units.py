"""Analysis per unit: the ratio statistic against statsmodels, and where it replaces the
request-level one (recorded stats, ``abgate analyze`` input v2, the report)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as scipy_stats

from analysis.decisions import analyze
from analysis.difference import difference_test
from analysis.inputs import InputError, experiment_from_json
from analysis.report import report_json
from analysis.sufficient import MetricStats, ProportionStats, RatioStats, VariantStats
from analysis.units import choose_unit_statistics
from core.schema import (
    UNIT_SUM_FIELDS,
    decode_epochs,
    decode_stats,
    metric_prefix,
    unit_metric_prefix,
    unit_requests_prefix,
    variant_prefix,
)
from experiments.loader import load_experiment
from recorded.reporting import assemble_experiment_data

DEMO = Path(__file__).resolve().parents[2] / "experiments" / "demo.yaml"


def _users(seed: int, n_users: int, shift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-request 0/1 outcomes and user ids: users with uneven request counts and their
    own success rates (so requests of a user are correlated)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 30, size=n_users)
    rates = np.clip(rng.beta(2, 3, size=n_users) + shift, 0, 1)
    groups = np.repeat(np.arange(n_users), counts)
    outcomes = (rng.random(groups.size) < rates[groups]).astype(float)
    return outcomes, groups


def _ratio(outcomes: np.ndarray, groups: np.ndarray) -> RatioStats:
    x = np.bincount(groups).astype(float)
    y = np.bincount(groups, weights=outcomes)
    return RatioStats.from_units(zip(x, y, strict=True))


def _cluster_robust(outcomes: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """Mean per request and its cluster-robust variance (statsmodels, CR1 by user)."""
    fit = sm.OLS(outcomes, np.ones((outcomes.size, 1))).fit(
        cov_type="cluster", cov_kwds={"groups": groups}
    )
    return float(fit.params[0]), float(fit.bse[0] ** 2)


def test_the_ratio_variance_is_statsmodels_cluster_robust_variance() -> None:
    # The delta-method variance of Σy/Σx over units equals the cluster-robust (CR1)
    # variance of the mean of the requests, clustered by unit: two derivations, one number.
    for seed, users in ((1, 50), (2, 400), (3, 3000)):
        outcomes, groups = _users(seed, users)
        ratio = _ratio(outcomes, groups)
        mean, variance = _cluster_robust(outcomes, groups)
        assert ratio.n == users
        assert ratio.mean == pytest.approx(mean, rel=1e-12)
        assert ratio.variance / ratio.n == pytest.approx(variance, rel=1e-9)
        # ...and it is larger than the variance that treats requests as independent.
        naive = MetricStats.from_values(outcomes)
        assert ratio.variance / ratio.n > 1.5 * naive.variance / naive.n


def test_the_difference_test_on_unit_statistics_matches_scipy() -> None:
    outcomes_c, groups_c = _users(11, 600)
    outcomes_t, groups_t = _users(12, 500, shift=0.04)
    control, treatment = _ratio(outcomes_c, groups_c), _ratio(outcomes_t, groups_t)
    result, _ = difference_test(control, treatment, difference="absolute", sequential=False)
    (m_c, v_c), (m_t, v_t) = (
        _cluster_robust(outcomes_c, groups_c),
        _cluster_robust(outcomes_t, groups_t),
    )
    # Welch on the cluster-robust variances, units as the observations.
    dof = (v_c + v_t) ** 2 / (v_c**2 / (600 - 1) + v_t**2 / (500 - 1))
    p = 2 * scipy_stats.t.sf(abs(m_t - m_c) / np.sqrt(v_c + v_t), dof)
    assert result.estimate == pytest.approx(m_t - m_c, rel=1e-12)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert (result.control_n, result.treatment_n) == (600, 500)


def test_impossible_sums_are_refused() -> None:
    with pytest.raises(ValueError, match="sum_xx"):
        RatioStats(10, 100.0, 50.0, 3.0, 3.0, 10.0)  # Σx² < (Σx)²/units
    with pytest.raises(ValueError, match="sum_xy"):
        RatioStats(2, 2.0, 2.0, 2.0, 2.0, 10.0)
    with pytest.raises(ValueError, match="no units"):
        RatioStats(0, 1.0, 1.0, 0.0, 0.0, 0.0)


def _variant(requests: int, outcomes: list[tuple[int, int]], *, units: bool = True
             ) -> VariantStats:  # fmt: skip
    """A variant whose units had (labelled outcomes, successes) each."""
    values = [1.0] * sum(s for _, s in outcomes) + [0.0] * sum(n - s for n, s in outcomes)
    ratio = RatioStats.from_units([(float(n), float(s)) for n, s in outcomes])
    return VariantStats(
        requests=requests,
        metrics={"accuracy": MetricStats.from_values(values)},
        unit_requests=RatioStats.from_units([(float(n), 0.0) for n, _ in outcomes]),
        unit_metrics={"accuracy": ratio} if units else {},
    )


def test_unit_statistics_replace_request_ones_only_where_every_variant_has_them() -> None:
    a = _variant(6, [(3, 2), (2, 1), (1, 1)])
    b = _variant(5, [(4, 1), (1, 1)])
    choice = choose_unit_statistics({"a": a, "b": b}, {"accuracy": "proportion"}, "header u")
    assert isinstance(choice.metrics["a"]["accuracy"], RatioStats)
    assert choice.metrics["a"]["accuracy"].proportion  # a proportion: relative by default
    assert choice.metrics["b"]["accuracy"].n == 2
    assert choice.unit.metrics == ("accuracy", "error_rate")
    assert choice.errors["a"].n == 3

    # One variant without unit sums: both stay per request, and the report says why.
    partial = choose_unit_statistics(
        {"a": a, "b": _variant(5, [(4, 1), (1, 1)], units=False)},
        {"accuracy": "proportion"},
        "header u",
    )
    assert isinstance(partial.metrics["a"]["accuracy"], ProportionStats)
    assert "b" in partial.unit.notes["accuracy"]
    # Units that are requests never use unit sums.
    plain = choose_unit_statistics({"a": a, "b": b}, {}, "request")
    assert isinstance(plain.metrics["a"]["accuracy"], MetricStats)
    assert plain.unit.metrics == () and not plain.errors

    # Sums that miss outcomes counted per request (a unit sum lost) are not used.
    short = VariantStats(requests=6, metrics={"accuracy": MetricStats.from_values([1.0] * 7)},
                         unit_metrics=a.unit_metrics)  # fmt: skip
    assert short.unit_metric("accuracy") is None


def _hash(epoch: int, variant: str, requests: int, units: list[tuple[int, int, int]]
          ) -> dict[str, float]:  # fmt: skip
    """Stats-hash fields as the scripts write them: units are (requests, outcomes, hits)."""
    fields: dict[str, float] = {variant_prefix(epoch, variant) + "requests": requests}
    m = metric_prefix(epoch, variant, "accuracy")
    hits = sum(h for _, _, h in units)
    n = sum(o for _, o, _ in units)
    fields.update({m + "n": n, m + "sum": hits, m + "ss": hits})
    for prefix, pairs in (
        (unit_requests_prefix(epoch, variant), [(r, 0) for r, _, _ in units]),
        (unit_metric_prefix(epoch, variant, "accuracy"), [(o, h) for _, o, h in units if o]),
    ):
        sums = (len(pairs), sum(x for x, _ in pairs), sum(x * x for x, _ in pairs),
                sum(y for _, y in pairs), sum(y * y for _, y in pairs),
                sum(x * y for x, y in pairs))  # fmt: skip
        fields.update({prefix + name: value for name, value in zip(UNIT_SUM_FIELDS, sums,
                                                                   strict=True)})  # fmt: skip
    return fields


def test_recorded_unit_sums_reach_the_decision_in_place_of_requests() -> None:
    config = load_experiment(DEMO)
    assert config.unit.source == "header"
    names = [v.name for v in config.variants]
    rng = np.random.default_rng(5)
    fields: dict[str, float] = {}
    labelled = {}
    for name in names:
        units = []
        for _ in range(300):
            requests = int(rng.integers(1, 20))
            outcomes = int(rng.integers(0, requests + 1))
            units.append((requests, outcomes, int(rng.integers(0, outcomes + 1))))
        labelled[name] = sum(1 for _, o, _ in units if o)  # units with an outcome
        fields.update(_hash(4, name, sum(r for r, _, _ in units), units))
    stats = decode_stats({k.encode(): str(v).encode() for k, v in fields.items()})
    epochs = decode_epochs({}, stats)
    data = assemble_experiment_data(config.name, config, epochs, {}, duration_s=None)
    champion = data.champion.metrics[config.metrics.primary.name]
    assert isinstance(champion, RatioStats) and champion.n == labelled[data.champion.name]
    assert data.analysis_unit.of(config.metrics.primary.name) == "unit"
    assert data.champion.unit_errors is not None
    report = report_json(analyze(data))
    assert report["analysis_unit"]["unit"] == "header X-User-ID"
    assert report["analysis_unit"]["primary"] == "unit"
    verdict = report["verdicts"][0]
    if "samples" in verdict["evidence"]:
        assert verdict["evidence"]["samples"]["champion"] == labelled[data.champion.name]


def _epoch_variant(units: list[tuple[int, int]]) -> dict[str, Any]:
    n = sum(x for x, _ in units)
    hits = sum(y for _, y in units)
    return {
        "requests": n,
        "metrics": {"accuracy": {"type": "proportion", "n": n, "sum": hits}},
        "units": {
            "accuracy": {
                "units": len(units),
                "sum_x": n,
                "sum_xx": sum(x * x for x, _ in units),
                "sum_y": hits,
                "sum_yy": sum(y * y for _, y in units),
                "sum_xy": sum(x * y for x, y in units),
            }
        },
    }


def _clustered_input(seed: int) -> dict[str, Any]:
    """An A/A experiment of 400 users a side whose 20 requests each share the user's
    success rate: request-level analysis finds differences that are not there."""
    rng = np.random.default_rng(seed)
    arms = {}
    for name in ("champion", "canary"):
        rates = rng.beta(1.0, 1.0, size=400)
        arms[name] = [(20, int(rng.binomial(20, r))) for r in rates]
    return {
        "schema_version": 2,
        "experiment": "users",
        "unit": "header X-User-ID",
        "settings": {"sequential": False, "min_samples": 100},
        "variants": [
            {"name": "champion", "role": "champion"},
            {"name": "canary", "role": "canary"},
        ],
        "epochs": [
            {
                "version": 1,
                "weights": {"champion": 50, "canary": 50},
                "variants": {k: _epoch_variant(v) for k, v in arms.items()},
            }
        ],
    }


def test_analyze_input_v2_reads_unit_statistics_and_reports_the_unit() -> None:
    data = experiment_from_json(_clustered_input(3))
    assert data.analysis_unit.of("accuracy") == "unit"
    assert data.champion.metrics["accuracy"].n == 400
    report = report_json(analyze(data))
    assert report["analysis_unit"]["primary"] == "unit"
    assert report["variants"][0]["primary"]["samples"] == {"champion": 400, "variant": 400}

    # Without the unit sums the same input is analysed per request: 8,000 a side.
    plain = _clustered_input(3)
    for arm in plain["epochs"][0]["variants"].values():
        del arm["units"]
    data = experiment_from_json(plain)
    assert data.analysis_unit.of("accuracy") == "request"
    assert data.champion.metrics["accuracy"].n == 8000


def test_a_clustered_aa_is_a_false_alarm_per_request_and_not_per_unit() -> None:
    flagged = {"unit": 0, "request": 0}
    for seed in range(40):
        with_units = _clustered_input(100 + seed)
        without = copy.deepcopy(with_units)
        for arm in without["epochs"][0]["variants"].values():
            del arm["units"]
        for key, raw in (("unit", with_units), ("request", without)):
            result = analyze(experiment_from_json(raw)).variants[0].primary
            assert result is not None
            flagged[key] += result.p_value < 0.05
    # Intra-user correlation ~0.5 and 20 requests a user: the request-level test's
    # variance is ~10x too small. 40 A/A runs: it flags far more than 5 % of them.
    assert flagged["request"] >= 15
    assert flagged["unit"] <= 7


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda a: a["units"]["accuracy"].update(sum_zz=1), "units.accuracy.sum_zz"),
        (lambda a: a["units"].update(latency=dict(a["units"]["accuracy"])), "units.latency"),
        (lambda a: a["units"]["accuracy"].update(sum_xx=1), "units.accuracy"),
        (lambda a: a["units"]["accuracy"].pop("sum_xy"), "units.accuracy.sum_xy"),
    ],
)
def test_malformed_unit_statistics_name_their_path(edit: Any, path: str) -> None:
    raw = _clustered_input(1)
    edit(raw["epochs"][0]["variants"]["canary"])
    with pytest.raises(InputError) as caught:
        experiment_from_json(json.loads(json.dumps(raw)))
    assert caught.value.path == f"epochs.0.variants.canary.{path}"


def test_epochs_are_combined_per_unit_when_the_totals_are_per_unit() -> None:
    """A weight change: the stratified estimate reads each epoch's unit sums, not requests."""
    data = _clustered_input(5)
    second = _clustered_input(6)["epochs"][0]
    second.update(version=2, weights={"champion": 90, "canary": 10})
    data["epochs"].append(second)
    result = analyze(experiment_from_json(data))
    va = result.variants[0]
    assert va.strata is not None and va.strata.epochs == (1, 2)
    assert va.primary is not None
    # 400 users a side in each epoch: units, not the 8,000 requests a side.
    assert (va.primary.control_n, va.primary.treatment_n) == (800, 800)
    assert va.strata.control.proportion  # a rate: its lift is reported relative
    assert va.primary.difference_type == "relative"
