"""Drift in the reports: named with its PSI when it fires, a quiet line when it does not."""

from __future__ import annotations

import dataclasses

from analysis.decisions import analyze
from analysis.drift import DriftCounts, FeatureReference, VariantReference, experiment_drift
from analysis.inputs import experiment_from_json
from analysis.report import report_html, report_json, report_markdown
from tests.analysis.test_report import experiment

DECILES = tuple(0.1 for _ in range(10))
EDGES = tuple(float(e) for e in range(-4, 5))
REFERENCE = VariantReference(
    "v1", features=(FeatureReference("f0", EDGES, DECILES), FeatureReference("f3", EDGES, DECILES))
)


def analysis_with(counts: dict[str, DriftCounts]):  # type: ignore[no-untyped-def]
    data = experiment_from_json(experiment(hours=4))
    drift = experiment_drift(data.name, {"champion": REFERENCE, "challenger": REFERENCE}, counts)
    return analyze(dataclasses.replace(data, drift=drift))


def test_a_drifted_feature_is_named_with_its_psi_in_every_format() -> None:
    steady = DriftCounts(features={0: [50] * 10, 1: [50] * 10})
    shifted = DriftCounts(features={0: [50] * 10, 1: [0] * 6 + [125] * 4})
    analysis = analysis_with({"champion": steady, "challenger": shifted})
    psi = analysis.data.drift.variants[1].features[1].psi  # type: ignore[union-attr]
    assert psi > 0.2
    markdown = report_markdown(analysis)
    assert f"challenger f3 PSI {psi:.3f}" in markdown
    assert "> [!WARNING]" in markdown.split("Data drift against")[1]
    assert f"| challenger | f3 | 500 | {psi:.3f} | < 0.001 | DRIFT |" in markdown
    assert "| champion | f3 | 500 | 0.000 | 1.000 | ok |" in markdown
    html = report_html(analysis)
    assert f"challenger f3 PSI {psi:.3f}" in html and 'role="alert"' in html
    data = report_json(analysis)["drift"]
    assert data["alerts"] == [
        {"variant": "challenger", "name": "f3", "kind": "feature", "psi": round(psi, 6)}
    ]


def test_no_drift_is_one_quiet_line_and_no_reference_no_section() -> None:
    steady = DriftCounts(features={0: [50] * 10, 1: [50] * 10})
    markdown = report_markdown(analysis_with({"champion": steady, "challenger": steady}))
    assert "No data drift (PSI > 0.2 with at least 200 sampled requests)." in markdown
    assert "[!WARNING]" not in markdown
    plain = analyze(experiment_from_json(experiment(hours=4)))
    assert "drift" not in report_markdown(plain).lower()
    assert report_json(plain)["drift"] is None
