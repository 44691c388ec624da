"""Report renderers on fixed inputs: JSON round-trips, SRM first, self-contained HTML."""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import time
from typing import Any

import pytest

from analysis.decisions import Analysis, analyze
from analysis.inputs import experiment_from_json
from analysis.report import report_html, report_json, report_markdown
from analysis.reports.svg import log_ticks, nice_ticks

# The gateway's buckets: 0.1 ms x 1.25^i up to 10 minutes.
BOUNDS = [round(0.1 * 1.25**i, 4) for i in range(int(math.log(600_000) / math.log(1.25)) + 1)]
START = 1_714_521_600  # 2024-05-01 00:00 UTC


def lognormal_counts(n: int, median_ms: float, sigma: float) -> list[int]:
    """Deterministic histogram counts of ``n`` lognormal latencies (no random numbers)."""

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((math.log(x) - math.log(median_ms)) / (sigma * math.sqrt(2))))

    edges = [0.0, *BOUNDS]
    counts = [
        round(n * (cdf(b) - (cdf(a) if a > 0 else 0.0))) for a, b in itertools.pairwise(edges)
    ]
    return [*counts, max(0, n - sum(counts))]


def experiment(
    *,
    hours: int = 24,
    names: tuple[str, ...] = ("champion", "challenger", "canary"),
    per_hour: tuple[int, ...] = (800, 100, 100),
    weights: tuple[float, ...] = (80, 10, 10),
    accuracy: tuple[float, ...] = (0.84, 0.90, 0.83),
    latency: tuple[tuple[float, float], ...] = ((40, 0.35), (44, 0.35), (48, 0.6)),
    name: str = "fraud-model-v7",
) -> dict[str, Any]:
    """A realistic run: hourly windows, a proportion metric, latency histograms."""
    windows = []
    totals = {v: {"requests": 0, "n": 0, "sum": 0} for v in names}
    for hour in range(hours):
        per = {}
        for index, (variant, base, p) in enumerate(zip(names, per_hour, accuracy, strict=True)):
            requests = base + (hour * 7 + index * 3) % 11 - 5
            correct = round(requests * p) + (hour + index) % 3 - 1
            per[variant] = {
                "requests": requests,
                "metrics": {"accuracy": {"type": "proportion", "n": requests, "sum": correct}},
            }
            totals[variant]["requests"] += requests
            totals[variant]["n"] += requests
            totals[variant]["sum"] += correct
        windows.append({"start": START + 3600 * hour, "variants": per})
    variants = []
    for index, variant in enumerate(names):
        t = totals[variant]
        median, sigma = latency[index]
        variants.append(
            {
                "name": variant,
                "role": "champion" if index == 0 else "challenger",
                "weight": weights[index],
                "requests": t["requests"],
                "errors": t["requests"] // 1000,
                "latency_ms": {
                    "bounds": BOUNDS,
                    "counts": lognormal_counts(t["requests"], median, sigma),
                },
                "metrics": {"accuracy": {"type": "proportion", "n": t["n"], "sum": t["sum"]}},
            }
        )
    return {
        "experiment": name,
        "settings": {"duration_s": hours * 3600},
        "variants": variants,
        "windows": windows,
    }


SRM_OFF = {
    "experiment": "split-off",
    "settings": {"sequential": False, "min_samples": 8},
    "variants": [
        {
            "name": "champion",
            "role": "champion",
            "weight": 50,
            "requests": 600,
            "metrics": {"accuracy": {"type": "proportion", "n": 600, "sum": 500}},
        },
        {
            "name": "canary",
            "role": "canary",
            "weight": 50,
            "requests": 400,
            "metrics": {"accuracy": {"type": "proportion", "n": 400, "sum": 340}},
        },
    ],
}


def run(data: dict[str, Any]) -> Analysis:
    return analyze(experiment_from_json(data))


@pytest.fixture(scope="module")
def realistic() -> Analysis:
    return run(experiment())


def test_the_realistic_input_promotes_one_and_rolls_back_the_slow_one(
    realistic: Analysis,
) -> None:
    actions = {v.variant: (v.action, v.rule) for v in realistic.verdicts}
    assert actions == {
        "challenger": ("promote", "primary"),
        "canary": ("rollback", "guardrail:p99_latency_ms"),
    }


# --- JSON -------------------------------------------------------------------------------------


def test_json_round_trips_with_srm_and_verdicts_first(realistic: Analysis) -> None:
    report = report_json(realistic)
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report
    assert list(report)[:5] == ["experiment", "test", "correction", "srm", "verdicts"]
    assert report["test"] == realistic.test
    assert report["srm"]["mismatch"] is False
    assert [a["variant"] for a in report["srm"]["arms"]] == ["champion", "challenger", "canary"]
    promote = report["verdicts"][0]
    assert {"variant", "action", "rule", "reason", "evidence"} <= set(promote)
    assert promote["evidence"]["samples"]["variant"] > 0
    assert len(report["effect_over_time"]) == 2 * 24


def test_json_carries_each_test_and_writes_infinity_as_a_string(realistic: Analysis) -> None:
    challenger = report_json(realistic)["variants"][0]
    primary = challenger["primary"]
    assert primary["metric"] == "accuracy"
    assert primary["ci"][0] < primary["estimate"] < primary["ci"][1]
    assert primary["adjusted_p_value"] >= primary["p_value"]
    # Every configured guardrail in the configured order, each with its result.
    errors, p99 = challenger["guardrails"]
    assert (errors["rule"], p99["rule"]) == ("guardrail:error_rate", "guardrail:p99_latency_ms")
    # The error guardrail is one-sided: its interval is open above.
    assert errors["test"]["ci"][1] == "inf"
    assert p99["latency"]["conclusive"] is True
    assert p99["status"] in ("ok", "failed")
    assert challenger["power"]["required_per_arm"] > 0


def test_json_writes_nan_as_null() -> None:
    data = experiment(hours=1, per_hour=(80, 10, 10))  # under 100 requests: no p99
    report = report_json(run(data))
    p99 = report["variants"][0]["guardrails"][1]
    assert (p99["metric"], p99["status"]) == ("p99_latency_ms", "not checked")
    latency = p99["latency"]
    assert latency["conclusive"] is False
    assert latency["ratio"] is None
    json.dumps(report, allow_nan=False)


def test_json_srm_mismatch_holds_with_evidence() -> None:
    report = report_json(run(SRM_OFF))
    assert report["srm"]["mismatch"] is True
    assert report["srm"]["p_value"] < 0.001
    (verdict,) = report["verdicts"]
    assert (verdict["action"], verdict["rule"]) == ("hold", "srm")
    assert verdict["evidence"]["observed"] == {"champion": 600, "canary": 400}


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_has_the_verdict_table_right_after_the_srm_line(realistic: Analysis) -> None:
    md = report_markdown(realistic)
    lines = md.splitlines()
    assert lines[0] == "## abgate report: fraud-model-v7"
    assert lines[2].startswith("**SRM:** Sample-ratio check passed")
    assert lines[4] == "### Verdicts"
    assert "| variant | verdict | rule | why |" in md
    assert "| challenger | ✅ promote | primary |" in md
    assert "| canary | ⛔ rollback | guardrail:p99_latency_ms |" in md
    for heading in ("### Primary metric: accuracy", "### Guardrails", "### Power"):
        assert heading in md
    assert realistic.test in md
    assert "correction: Holm" in md


def test_markdown_shows_the_srm_warning_before_the_verdicts() -> None:
    md = report_markdown(run(SRM_OFF))
    warning = md.index("Sample-ratio mismatch: every verdict is on hold")
    assert warning < md.index("### Verdicts")
    assert "Observed 60.0%/40.0% vs configured 50.0%/50.0%" in md
    assert "| canary | ⏸️ hold | srm |" in md


def test_markdown_cells_cannot_break_the_table_or_inject_html() -> None:
    data = copy.deepcopy(SRM_OFF)
    data["variants"][1]["name"] = "<img src=x>|b"
    md = report_markdown(run(data))
    assert "<img" not in md
    assert "&lt;img src=x>\\|b" in md
    # A "<" that cannot open a tag stays readable.
    assert "(chi-square p = 2.5e-10 < 0.001)" in md


# --- HTML -------------------------------------------------------------------------------------


def test_html_is_one_self_contained_page_with_three_plots(realistic: Analysis) -> None:
    page = report_html(realistic)
    assert page.startswith("<!doctype html>")
    assert page.count("<svg") == 3
    assert "http://" not in page
    assert "https://" not in page
    assert "<script" not in page
    assert "<link" not in page
    assert "@import" not in page
    assert re.search(r"\b(src|href)\s*=", page) is None


def test_html_reader_sees_verdict_badges_before_the_plots(realistic: Analysis) -> None:
    page = report_html(realistic)
    first_plot = page.index("<svg")
    assert page.index('class="badge badge-promote"') < first_plot
    assert page.index('class="badge badge-rollback"') < first_plot
    assert page.index("Sample-ratio check passed") < page.index("Verdicts")


def test_html_puts_the_srm_warning_first() -> None:
    page = report_html(run(SRM_OFF))
    alert = page.index('class="srm-alert" role="alert"')
    assert alert < page.index('id="verdicts"') < page.index("<svg")
    assert 'class="badge badge-hold"' in page


def test_html_escapes_user_strings() -> None:
    data = experiment(hours=3)
    data["experiment"] = "<script>alert(1)</script>"
    data["variants"][1]["name"] = "<b>x"
    for window in data["windows"]:
        window["variants"]["<b>x"] = window["variants"].pop("challenger")
    page = report_html(run(data))
    assert "<b>x" not in page
    assert "&lt;b&gt;x" in page
    assert "<script" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_html_user_supplied_urls_stay_text() -> None:
    data = copy.deepcopy(SRM_OFF)
    data["variants"][1]["name"] = 'https://example.com/"onload="x'
    page = report_html(run(data))
    assert "https://example.com/&quot;onload=&quot;x" in page
    without_user_text = page.replace("https://example.com/&quot;onload=&quot;x", "")
    assert "http" not in without_user_text
    # The quote stays escaped, so the name cannot close an attribute and open another.
    assert '"onload' not in page
    assert re.search(r"\b(src|href|onload)\s*=", without_user_text) is None


def test_html_notes_missing_windows_and_latency() -> None:
    page = report_html(run(SRM_OFF))
    assert page.count("<svg") == 3
    assert "no time windows recorded" in page
    assert "no latency recorded" in page


def test_html_marks_each_variants_p99(realistic: Analysis) -> None:
    page = report_html(realistic)
    for variant in ("champion", "challenger", "canary"):
        assert re.search(rf"{variant}: p99 \d+(\.\d+)? ms", page)


# --- speed and helpers ------------------------------------------------------------------------


def test_rendering_3_variants_by_24_windows_is_quick(realistic: Analysis) -> None:
    for render in (report_json, report_markdown, report_html):
        best = math.inf
        for _ in range(3):
            started = time.perf_counter()
            render(realistic)
            best = min(best, time.perf_counter() - started)
        assert best < 0.1, f"{render.__name__} took {best * 1000:.1f} ms"


def test_nice_ticks_cover_the_range_with_round_steps() -> None:
    ticks, step = nice_ticks(-0.031, 0.118, 6)
    assert step == 0.025
    assert ticks[0] <= -0.031 and ticks[-1] >= 0.118
    assert ticks == [-0.05, -0.025, 0.0, 0.025, 0.05, 0.075, 0.1, 0.125]


def test_log_ticks_add_2_and_5_over_few_decades() -> None:
    assert log_ticks(8.0, 300.0) == [10.0, 20.0, 50.0, 100.0, 200.0]
    assert log_ticks(0.1, 100_000.0) == [0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0]
