"""Data drift end to end: real Redis, real workers, a real gateway, the real CLI.

``abgate loadgen --shift`` moves one feature; ``abgate status``, the report,
``/metrics`` and the admin API must name that feature with its PSI, and an
unshifted load must raise no alert at all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from core.schema import parse_drift_fields
from core.store import Store
from model_workers.registry import ModelRegistry
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, write_config

pytestmark = pytest.mark.integration


def abgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abgate", *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **env},
    )


def _sampled(store: Store) -> int:
    return sum(c.samples for c in parse_drift_fields(store.totals("demo")).values())


def _load(url: str, requests_total: int, env: dict[str, str], *shift: str) -> int:
    args = ["loadgen", "--url", url, "--rate", "0", "--duration", "120", "--concurrency", "8",
            "--requests", str(requests_total), "--feedback", "0"]  # fmt: skip
    for value in shift:
        args += ["--shift", value]
    done = abgate(*args, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    return int(done.stdout.split(" requests in ")[0].removeprefix("sent "))


def _wait_sampled(store: Store, expected: int) -> None:
    # Every answered request is sampled at rate 1; wait for the recorder's flush.
    deadline = time.monotonic() + 30
    while _sampled(store) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _sampled(store) == expected


def _psi_metrics(url: str) -> dict[tuple[str, str], float]:
    text = requests.get(url + "/metrics", timeout=10).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "abgate_feature_drift_psi":
                out[(sample.labels["variant"], sample.labels["feature"])] = sample.value
    return out


def test_shifted_feature_is_named_with_its_psi_and_unshifted_load_shows_none(
    tmp_path: Path, redis_url: str, demo_workers: dict, demo_registry: ModelRegistry
) -> None:
    ports = {n: port_of(c) for n, c in demo_workers.items()}
    config = write_config(tmp_path / "drift.yaml", ports, {"champion": 50, "challenger": 50},
                          tail="statistics: {drift_min_samples: 100}")  # fmt: skip
    env = {"REDIS_URL": redis_url}
    applied = abgate("apply", str(config), "--registry", str(demo_registry.root), env=env)
    assert applied.returncode == 0, applied.stderr
    store = Store(redis_url)
    assert set(store.drift_reference("demo")) == {"v1", "v2"}
    gw = start_gateway(None, redis_url, ABGATE_DRIFT_SAMPLE_RATE="1")
    try:
        assert requests.get(gw.url + "/ready", timeout=10).json()["experiments"]["demo"][
            "drift_checks"
        ]
        # --- unshifted traffic: same distribution as the training data, no alert
        sent = _load(gw.url, 600, env)
        _wait_sampled(store, sent)
        status = json.loads(abgate("status", "demo", "--json", env=env).stdout)[0]
        drift = status["drift"]
        assert drift["alert"] is False, drift["alerts"]
        assert {v["variant"] for v in drift["variants"]} == {"champion", "challenger"}
        assert all(v["samples"] >= 100 for v in drift["variants"])
        assert "drift: none" in abgate("status", "demo", env=env).stdout
        report = json.loads(abgate("report", "demo", "--format", "json", env=env).stdout)
        assert report["drift"]["alert"] is False
        assert max(_psi_metrics(gw.url).values()) < 0.2

        # --- feature f3 moved by +3: named, with its PSI, everywhere
        shifted = _load(gw.url, 1200, env, "f3:3")
        _wait_sampled(store, sent + shifted)
        status = json.loads(abgate("status", "demo", "--json", env=env).stdout)[0]
        features = {(a["variant"], a["name"]) for a in status["drift"]["alerts"]
                    if a["kind"] == "feature"}  # fmt: skip
        assert features == {("champion", "f3"), ("challenger", "f3")}
        text = abgate("status", "demo", env=env).stdout
        psi = next(a["psi"] for a in status["drift"]["alerts"] if a["name"] == "f3")
        assert f"f3 PSI {psi:.3f}" in text and "DRIFT" in text
        markdown = abgate("report", "demo", "--format", "md", env=env).stdout
        assert "Data drift" in markdown and "f3 PSI" in markdown and "| DRIFT |" in markdown
        html = abgate("report", "demo", "--format", "html", env=env).stdout
        assert "f3 PSI" in html
        metrics = _psi_metrics(gw.url)
        assert metrics[("champion", "f3")] > 0.2 and metrics[("challenger", "f3")] > 0.2
        assert max(v for (_, f), v in metrics.items() if f != "f3") < 0.2
        admin = requests.get(gw.url + "/admin/experiments/demo/drift", timeout=10,
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
        assert admin.status_code == 200
        assert {(a["variant"], a["name"]) for a in admin.json()["alerts"]} >= features
        whole = requests.get(gw.url + "/admin/experiments/demo", timeout=10,
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})  # fmt: skip
        assert whole.json()["drift"]["alert"] is True
    finally:
        gw.stop()
        store.close()


def test_bad_shift_is_one_line_and_exit_1() -> None:
    done = abgate("loadgen", "--shift", "f42:1", env={})
    assert done.returncode == 1
    assert done.stderr.strip().count("\n") == 0
    assert "--shift takes FEATURE:DELTA" in done.stderr
