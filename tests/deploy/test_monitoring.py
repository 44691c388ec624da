"""deploy/monitoring/: the Grafana dashboard and the Prometheus alert rules.

Neither Grafana nor Prometheus runs here, so the files are checked against what
they depend on: the dashboard against a JSON schema of the structure Grafana
reads; every PromQL expression with a real PromQL parser (``promql-parser``,
a port of Prometheus's own, with its type checks); every metric and label they
name against what the gateway's collector really exports; the rules with
``promtool check rules`` when a promtool is at hand (``make promtool``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import jsonschema
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from core.store import FeedbackJoins
from gateway.hotpath import HotPath
from gateway.metrics import GatewayMetrics
from gateway.process_figures import HttpFigures
from tests.deploy._contract import REPO
from tests.gateway.test_metrics import gateway_state

MONITORING = REPO / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana-dashboard.json"
ALERTS = MONITORING / "prometheus-alerts.yaml"
# Series Prometheus makes itself for every target, not exported by the gateway.
SYNTHETIC = {"up": {"instance", "job"}}
TARGET_LABELS = {"instance", "job"}  # added by Prometheus to every scraped series
# Grafana's variables, replaced as Grafana would before the query reaches Prometheus.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$experiment": ".*"}
DURATION = r"^[0-9]+(ms|s|m|h|d|w|y)$"

PANEL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "id", "gridPos"],
    "properties": {
        "type": {"enum": ["row", "timeseries", "stat", "table", "gauge"]},
        "title": {"type": "string", "minLength": 1},
        "id": {"type": "integer", "minimum": 1},
        "gridPos": {
            "type": "object",
            "required": ["h", "w", "x", "y"],
            "properties": {
                "h": {"type": "integer", "minimum": 1},
                "w": {"type": "integer", "minimum": 1, "maximum": 24},
                "x": {"type": "integer", "minimum": 0, "maximum": 23},
                "y": {"type": "integer", "minimum": 0},
            },
        },
        "datasource": {
            "type": "object",
            "required": ["type", "uid"],
            "properties": {"type": {"const": "prometheus"}, "uid": {"const": "${datasource}"}},
        },
        "targets": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["refId", "expr"],
                "properties": {
                    "refId": {"type": "string", "pattern": "^[A-Z]$"},
                    "expr": {"type": "string", "minLength": 1},
                    "legendFormat": {"type": "string"},
                },
            },
        },
    },
    "if": {"properties": {"type": {"not": {"const": "row"}}}},
    "then": {"required": ["datasource", "targets"], "properties": {"targets": {"minItems": 1}}},
}
DASHBOARD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["title", "uid", "schemaVersion", "panels", "templating", "time"],
    "properties": {
        "uid": {"type": "string", "pattern": "^[a-zA-Z0-9_-]{1,40}$"},
        "schemaVersion": {"type": "integer", "minimum": 36},
        "panels": {"type": "array", "minItems": 1, "items": PANEL_SCHEMA},
        "templating": {
            "type": "object",
            "required": ["list"],
            "properties": {
                "list": {
                    "type": "array",
                    "items": {"type": "object", "required": ["name", "type"]},
                }
            },
        },
    },
}
RULES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["groups"],
    "additionalProperties": False,
    "properties": {
        "groups": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["name", "rules"],
                "additionalProperties": False,
                "properties": {
                    "name": {"type": "string"},
                    "interval": {"type": "string", "pattern": DURATION},
                    "rules": {
                        "type": "array",
                        "minItems": 1,
                        "items": {
                            "type": "object",
                            "required": ["alert", "expr", "labels", "annotations"],
                            "additionalProperties": False,
                            "properties": {
                                "alert": {"type": "string", "pattern": "^Abgate[A-Za-z0-9]+$"},
                                "expr": {"type": "string"},
                                "for": {"type": "string", "pattern": DURATION},
                                "labels": {
                                    "type": "object",
                                    "required": ["severity"],
                                    "properties": {
                                        "severity": {"enum": ["critical", "warning", "info"]}
                                    },
                                },
                                "annotations": {
                                    "type": "object",
                                    "required": ["summary", "description"],
                                },
                            },
                        },
                    },
                },
            },
        }
    },
}


def exported() -> dict[str, set[str]]:
    """Series names the gateway's collector exports, with the label names seen on each.

    A gateway with traffic, shadow calls, drift samples, feedback, a ramp and
    abgate's own HTTP server, so every family has samples.
    """
    experiments, recorder, _ = gateway_state()
    bins = experiments.by_name["demo"].drift["champion"]  # type: ignore[index]
    now = time.time()
    for i in range(300):
        variant = "champion" if i % 3 else "canary"
        recorder.record_request("demo", variant, "v1", 3, ok=i % 7 != 0, client_error=False,
                                latency_ms=5.0, fallback=i % 13 == 0, request_id=f"r{i}",
                                prediction=0, error=None, ts=now)  # fmt: skip
        recorder.record_shadow("demo", "shadow", ok=True, agreed=i % 4 != 0)
        recorder.record_drift("demo", bins.fields_for([float(i % 5), 0.0], {"prediction": 0}), now)
        recorder.count_feedback("demo", "counted")
    recorder.feedback_joins["demo"] = FeedbackJoins(1, pending=2, parked=5, joined=2, expired=1)
    recorder.feedback_expired["demo"] += 1
    metrics = GatewayMetrics(experiments, recorder, HotPath(experiments, recorder, None))
    metrics.http = lambda: HttpFigures(1, 2, 3, {"head": 1, "body": 0, "write": 0})
    names: dict[str, set[str]] = {k: set(v) for k, v in SYNTHETIC.items()}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            names.setdefault(sample.name, set()).update(sample.labels)
    return names


def promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def expression_problems(expr: str, names: dict[str, set[str]]) -> list[str]:
    """Why ``expr`` would not work on the gateway's metrics (empty when it would)."""
    try:
        tree = promql_parser.parse(promql(expr))
    except ValueError as exc:
        return [f"not PromQL: {exc}"]
    problems: list[str] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            if node.name not in names:
                problems.append(f"{node.name} is not exported")
                return
            for matcher in node.matchers.matchers:
                if matcher.name not in names[node.name] | TARGET_LABELS:
                    problems.append(f"{node.name} has no label {matcher.name}")

    promql_parser.walk(tree, visit)
    return problems


def template_labels(text: str, pattern: str) -> set[str]:
    return set(re.findall(pattern, text))


def selected_names(expr: str) -> set[str]:
    found: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            found.add(node.name)

    promql_parser.walk(promql_parser.parse(promql(expr)), visit)
    return found


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return dashboard


def load_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    jsonschema.validate(document, RULES_SCHEMA)
    return [rule for group in document["groups"] for rule in group["rules"]]


NAMES = exported()


def test_the_exported_names_are_the_gateways() -> None:
    # The check below is only as good as this list: it must hold the real families.
    for name in ("abgate_requests_total", "abgate_request_duration_seconds_bucket",
                 "abgate_drift_alert", "abgate_http_timeouts_total", "abgate_build_info",
                 "process_cpu_seconds_total", "abgate_feedback_expired_total"):  # fmt: skip
        assert name in NAMES, name
    assert NAMES["abgate_requests_total"] == {"experiment", "variant", "status"}


def test_dashboard_has_grafanas_structure() -> None:
    dashboard = load_dashboard()
    jsonschema.validate(dashboard, DASHBOARD_SCHEMA)
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels), "panel ids must be unique"
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for row in range(grid["y"], grid["y"] + grid["h"]):
            for column in range(grid["x"], grid["x"] + grid["w"]):
                assert (row, column) not in cells, f"{panel['title']} overlaps {cells[row, column]}"
                cells[row, column] = panel["title"]
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "experiment"} <= variables
    for panel in panels:
        for target in panel.get("targets", ()):
            used = set(re.findall(r"\$\{?(\w+)", target["expr"])) - {"__rate_interval"}
            assert used <= variables, (panel["title"], used - variables)


def test_every_dashboard_query_reads_exported_metrics() -> None:
    dashboard = load_dashboard()
    queries = [
        (panel["title"], target)
        for panel in dashboard["panels"]
        for target in panel.get("targets", ())
    ]
    assert len(queries) >= 20
    for title, target in queries:
        assert not expression_problems(target["expr"], NAMES), (title, target["expr"])
        labels = set().union(*(NAMES[n] for n in selected_names(target["expr"])))
        legend = template_labels(target.get("legendFormat", ""), r"\{\{\s*(\w+)\s*\}\}")
        assert legend <= labels | TARGET_LABELS, (title, legend - labels)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric, label = re.fullmatch(
                r"label_values\((\w+), (\w+)\)", variable["definition"]
            ).groups()  # type: ignore[union-attr]
            assert label in NAMES[metric], variable


def test_alert_rules_are_valid_and_read_exported_metrics() -> None:
    rules = load_rules()
    assert len({r["alert"] for r in rules}) == len(rules) >= 8
    for rule in rules:
        assert not expression_problems(rule["expr"], NAMES), (rule["alert"], rule["expr"])
        if "for" in rule:
            promql_parser.parse_duration(rule["for"])
        labels = set().union(*(NAMES[n] for n in selected_names(rule["expr"])))
        text = " ".join(rule["annotations"].values())
        used = template_labels(text, r"\$labels\.(\w+)")
        assert used <= labels | TARGET_LABELS, (rule["alert"], used - labels)


def test_the_checks_catch_a_renamed_metric_or_label() -> None:
    assert expression_problems("rate(abgate_request_total[5m])", NAMES) == [
        "abgate_request_total is not exported"
    ]
    assert expression_problems('abgate_requests_total{outcome="error"}', NAMES) == [
        "abgate_requests_total has no label outcome"
    ]
    assert expression_problems("rate(abgate_requests_total)", NAMES)[0].startswith("not PromQL")


def promtool() -> str | None:
    return shutil.which("promtool") or shutil.which("promtool", path=str(Path(REPO, ".venv/bin")))


@pytest.mark.skipif(
    promtool() is None, reason="no promtool on PATH or in .venv/bin (make promtool)"
)
def test_promtool_accepts_the_rules() -> None:
    checked = subprocess.run(
        [str(promtool()), "check", "rules", str(ALERTS)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in checked.stdout
