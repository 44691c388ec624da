"""The ramp's report: its ending first, per-step SRM, no whole-ramp SRM alarm."""

from __future__ import annotations

import dataclasses
import json

from analysis.decisions import analyze
from analysis.epochs import Epoch
from analysis.inputs import AnalysisSettings, ExperimentData, VariantData
from analysis.sufficient import MetricStats, ProportionStats, VariantStats
from ramp.report import RampReport, render_ramp_report, step_record


def whole_ramp() -> ExperimentData:
    """Totals of a ramp 10 % → 50 %: nothing like the last step's 50/50 split."""
    settings = AnalysisSettings(alpha=0.05, tuning_n=500, min_samples=50, max_p99_ratio=None)
    variants = (
        VariantData("champion", "champion", 50.0, 9000, 10, metrics={
            "accuracy": ProportionStats(9000, 7560.0)}),
        VariantData("canary", "canary", 50.0, 3000, 4, metrics={
            "accuracy": ProportionStats(3000, 2790.0)}),
    )  # fmt: skip
    return ExperimentData("demo", variants, settings)


def report(status: str = "promoted", skewed_step: bool = False) -> RampReport:
    steps = (
        step_record(0, 10.0, {"champion": 90.0, "canary": 10.0},
                    {"champion": 5400, "canary": 600}, started_at=0.0, ended_at=20.0,
                    threshold=0.001),
        step_record(1, 50.0, {"champion": 50.0, "canary": 50.0},
                    {"champion": 5000, "canary": 2400} if skewed_step
                    else {"champion": 3000, "canary": 3000},
                    started_at=20.0, ended_at=36.0, threshold=0.001),
    )  # fmt: skip
    return RampReport(
        experiment="demo",
        variant="canary",
        status=status,
        rule="promotion" if status == "promoted" else "harm",
        reason="canary shown within 2.0% of the champion: lift +10.71% [+8.1%, +13.3%]",
        evidence={"estimate": 0.1071, "ci": [0.081, 0.133], "margin": 0.02, "test": "cs"},
        plan={
            "served_steps": [10.0, 50.0],
            "promote_on": "non_inferiority",
            "non_inferiority_margin": 0.02,
            "test": "confidence_sequence",
            "max_duration_s": 300,
            "on_expiry": "rollback",
        },
        steps=steps,
    )


def test_plain_analysis_of_whole_ramp_totals_raises_a_false_srm_alarm() -> None:
    assert analyze(whole_ramp()).srm.mismatch  # the bug the ramp report avoids


def test_the_report_leads_with_the_ending_and_has_no_false_srm_alarm() -> None:
    out = render_ramp_report(report(), whole_ramp())
    md = out["md"]
    assert md.startswith("## Ramp of canary in demo: PROMOTED")
    assert md.index("PROMOTED canary (promotion)") < md.index("## abgate report")
    assert "| 1 | 10 % | 20 | champion 5,400, canary 600 | ok" in md
    assert "Sample-ratio mismatch" not in md and "MISMATCH" not in md
    assert "not checked on the whole ramp" in md
    assert "| canary | ✅ promote | primary |" in md  # decided on the data, not held
    html = out["html"]
    assert html.index("Ramp of canary: PROMOTED") < html.index("Verdicts")
    assert "srm-alert" not in html.split("<main>", 1)[1].split("</style>")[-1]
    body = json.loads(out["json"])
    assert next(iter(body)) == "ramp" and body["ramp"]["ending"] == "promoted"
    assert [s["canary_weight"] for s in body["ramp"]["steps"]] == [10.0, 50.0]
    assert body["srm"]["mismatch"] is False and body["srm"]["checked"] is False


def test_a_step_whose_split_is_off_is_flagged_in_its_row() -> None:
    md = render_ramp_report(report("rolled_back", skewed_step=True), whole_ramp())["md"]
    assert md.startswith("## Ramp of canary in demo: ROLLED BACK")
    assert "| 2 | 50 % | 16 | champion 5,000, canary 2,400 | MISMATCH" in md


def test_with_epochs_the_whole_ramp_split_is_checked_per_step() -> None:
    """Each step is an epoch: the report checks each against its own weights."""
    settings = AnalysisSettings(alpha=0.05, tuning_n=500, min_samples=50, max_p99_ratio=None)

    def arm(requests: int, correct: float) -> VariantStats:
        return VariantStats(requests=requests, metrics={"accuracy": MetricStats(
            requests, correct, correct)})  # fmt: skip

    def epochs(canary_second: int) -> tuple[Epoch, ...]:
        return (
            Epoch(1, {"champion": 90.0, "canary": 10.0},
                  variants={"champion": arm(5400, 4536.0), "canary": arm(600, 558.0)}),
            Epoch(2, {"champion": 50.0, "canary": 50.0},
                  variants={"champion": arm(3000, 2520.0),
                            "canary": arm(canary_second, 0.93 * canary_second)}),
        )  # fmt: skip

    for canary_second, mismatch in ((3000, False), (2400, True)):
        data = dataclasses.replace(whole_ramp(), settings=settings, epochs=epochs(canary_second))
        out = json.loads(render_ramp_report(report(), data)["json"])
        text = json.dumps(out)
        assert "not checked on the whole ramp" not in text
        md = render_ramp_report(report(), data)["md"]
        if mismatch:
            assert "Sample-ratio mismatch" in md and "config v2" in md, md
        else:
            assert "Sample-ratio check passed" in md and "2 epochs checked" in md, md


def test_a_ramp_ended_in_its_shadow_phase_says_no_step_was_exposed() -> None:
    shadowed = dataclasses.replace(
        report("rolled_back"), rule="shadow_harm", steps=(),
        shadow={"rule": "shadow_harm", "reason": "canary shown less accurate", "started_at": 0.0,
                "ended_at": 3.0, "evidence": {"paired": {"both": 611, "live_only": 134}}},
    )  # fmt: skip
    out = render_ramp_report(shadowed, whole_ramp())
    md, html = out["md"], out["html"]
    assert "No exposed step: the ramp ended in its shadow phase" in md
    assert "| step | canary weight |" not in md  # no empty steps table
    assert "No exposed step" in html and "<h2>Steps</h2>" not in html
    assert "Shadow phase (shadow_harm, 3 s, 0 requests served to users by canary)" in md
