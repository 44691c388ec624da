"""The paired view of a shadow: estimate, interval, McNemar and the gate's verdict."""

from __future__ import annotations

import json

import pytest

from analysis.inputs import InputError, experiment_from_json
from analysis.paired import (
    PairedCounts,
    mcnemar_exact,
    paired_harm_test,
    paired_non_inferiority_test,
    paired_sequential_test,
    paired_z_test,
)
from analysis.report import render
from analysis.reports.json_report import jsonable
from analysis.shadows import ShadowData, analyze_shadow
from analysis.sufficient import MetricStats

BETTER = PairedCounts(both=700, live_only=20, shadow_only=60, neither=220)
WORSE = PairedCounts(both=600, live_only=120, shadow_only=20, neither=260)
FEW = PairedCounts(both=50, live_only=3, shadow_only=4, neither=43)


@pytest.mark.parametrize(
    ("counts", "verdict"),
    [(BETTER, "non_inferior"), (WORSE, "harm"), (FEW, "undecided"),
     (PairedCounts(0, 0, 0, 0), "no_data")],
)  # fmt: skip
def test_verdict_follows_the_one_sided_sequential_tests(counts: PairedCounts, verdict: str) -> None:
    result = analyze_shadow(ShadowData("v2", "accuracy", counts), margin=0.01, tuning=1000)
    assert result.verdict == verdict
    harm = paired_harm_test(counts, tuning=1000)
    inferiority = paired_non_inferiority_test(counts, margin=0.01, tuning=1000)
    assert result.harm == harm and result.non_inferiority == inferiority
    assert result.verdict != "harm" or harm.significant
    assert result.verdict != "non_inferior" or (inferiority.significant and not harm.significant)
    # The interval shown agrees with the verdict: harm iff its upper end is below 0.
    if counts.n:
        assert (result.difference.ci_high < 0) == harm.significant
        assert (result.difference.ci_low > -0.01) == inferiority.significant


def test_difference_is_made_of_the_one_sided_bounds_or_is_the_wald_interval() -> None:
    # At level 1 - 2·alpha: the interval shown is the one the one-sided verdicts read.
    sequential = analyze_shadow(ShadowData("v2", "accuracy", BETTER), tuning=1000)
    harm = paired_harm_test(BETTER, tuning=1000)
    better = paired_sequential_test(BETTER, alternative="greater", alpha=0.05, tuning=1000)
    assert sequential.difference.ci == (better.ci_low, harm.ci_high)
    assert sequential.difference.p_value == pytest.approx(2 * min(harm.p_value, better.p_value))
    assert sequential.difference.estimate == pytest.approx(0.04)
    fixed = analyze_shadow(ShadowData("v2", "accuracy", BETTER), sequential=False)
    assert fixed.difference == paired_z_test(BETTER, alpha=0.1)
    assert fixed.mcnemar == mcnemar_exact(BETTER)
    # The fixed-horizon interval is the narrower one.
    assert fixed.difference.ci_high - fixed.difference.ci_low < (
        sequential.difference.ci_high - sequential.difference.ci_low
    )


@pytest.mark.parametrize(
    "counts",
    [
        # The two-sided sequence at 2·alpha ends below 0 here, the one-sided harm bound
        # just above it (p 0.051): an interval read off that sequence contradicted the
        # "undecided" verdict.
        PairedCounts(both=500, live_only=22, shadow_only=7, neither=100),
        PairedCounts(both=500, live_only=61, shadow_only=34, neither=100),
        *(PairedCounts(400, live, shadow, 80) for live in (0, 9, 30) for shadow in (0, 11, 40)),
    ],
)
def test_the_interval_shown_excludes_0_exactly_when_a_test_says_so(counts: PairedCounts) -> None:
    result = analyze_shadow(ShadowData("v2", "accuracy", counts), margin=0.0, tuning=1000)
    low, high = result.difference.ci
    if result.difference.error:
        return
    assert (high < 0) == result.harm.significant
    assert (low > 0) == result.non_inferiority.significant  # margin 0: better than live
    assert (result.difference.p_value < 0.1) == (high < 0 or low > 0)


def test_harm_is_asked_before_non_inferiority() -> None:
    # Worse by half a point on a million labels: both one-sided tests reject.
    counts = PairedCounts(both=800_000, live_only=20_000, shadow_only=15_000, neither=165_000)
    result = analyze_shadow(ShadowData("v2", "accuracy", counts), margin=0.01)
    assert result.harm.significant and result.non_inferiority.significant
    assert result.verdict == "harm"


def test_squared_error_differences_get_a_paired_mean_test() -> None:
    errors = MetricStats(n=50, sum=-10.0, sum_squares=40.0)
    result = analyze_shadow(ShadowData("v2", "value", squared_error=errors), sequential=False)
    assert result.squared_error is not None
    assert result.squared_error.test == "paired_t"
    assert result.squared_error.estimate == pytest.approx(-0.2)
    assert result.verdict == "no_data"  # no label: no accuracy verdict
    json.dumps(jsonable(result.as_dict()), allow_nan=False)


def _file(**extra: object) -> dict[str, object]:
    return {
        "variants": [{"name": "champion", "role": "champion", "requests": 1000}],
        "shadows": [{"name": "shadow-v2", "model_version": "v2",
                     "paired": {"both": 700, "live_only": 20, "shadow_only": 60, "neither": 220},
                     "shed": 3, **extra}],
    }  # fmt: skip


def test_analyze_reads_paired_counts_and_reports_them_in_every_format() -> None:
    data = experiment_from_json(_file())
    (shadow,) = data.shadows
    assert shadow.counts == BETTER and shadow.metric == "accuracy" and shadow.shed == 3
    report = json.loads(render(data, "json"))
    (entry,) = report["shadows"]
    assert entry["paired"]["n"] == 1000 and entry["verdict"] == "non_inferior"
    assert entry["difference"]["estimate"] == pytest.approx(0.04)
    assert "| shadow-v2 | accuracy vs live | 700 / 20 / 60 / 220 |" in render(data, "md")
    assert 'class="badge badge-non-inferior"' in render(data, "html")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"paired": {"both": 1, "live_only": 2}}, "shadows.0.paired.shadow_only: field required"),
        ({"paired": {"both": 1, "live_only": -2, "shadow_only": 0, "neither": 0}},
         "shadows.0.paired.live_only: must be >= 0"),
        ({"paired": {"both": 1.5, "live_only": 0, "shadow_only": 0, "neither": 0}},
         "shadows.0.paired.both: must be a whole number"),
        ({"agreed": 4}, "shadows.0.agreed: unknown field"),
        ({"squared_error": {"n": 2, "sum": 4, "sum_squares": 1}},
         "shadows.0.squared_error.sum_squares: must be >= sum^2/n"),
    ],
)  # fmt: skip
def test_bad_paired_input_names_its_field(change: dict[str, object], message: str) -> None:
    with pytest.raises(InputError, match=message.replace("^", r"\^")):
        experiment_from_json(_file(**change))


def test_one_variant_needs_shadows_to_be_analysed() -> None:
    bare = _file()
    bare.pop("shadows")
    with pytest.raises(InputError, match="variants: needs a list of at least two variants"):
        experiment_from_json(bare)


def test_a_relative_margin_is_a_share_of_the_live_accuracy_and_is_validated() -> None:
    # 700/20/60/220: live 72 %. A relative margin of 0.5 % is 0.36 pts; 0.05 pts absolute.
    data = experiment_from_json({**_file(), "settings": {"shadow_margin_relative": 0.005}})
    (entry,) = json.loads(render(data, "json"))["shadows"]
    assert entry["non_inferiority"]["margin"] == pytest.approx(0.005 * 0.72)
    assert "0.005 × the live model's accuracy" in render(data, "md")
    assert "no worse than 5 pts" in render(experiment_from_json(
        {**_file(), "settings": {"shadow_margin": 0.05}}), "md")  # fmt: skip
    for bad in (1.5, -0.1, "1 %", True):
        with pytest.raises(InputError, match=r"settings\.shadow_margin_relative: must be null or"):
            experiment_from_json({**_file(), "settings": {"shadow_margin_relative": bad}})
