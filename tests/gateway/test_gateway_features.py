"""Shadows, metrics, the CLI around the gateway (apply, status, up)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
import requests

from abgate.processes import start_child, wait_http_ok
from abgate.redis_server import free_port
from core.schema import decode_stats
from core.store import Store
from tests.conftest import port_of, start_gateway, write_config
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def abgate(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "abgate", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})  # fmt: skip


def test_shadow_gets_copies_and_agreement_is_recorded(tmp_path, redis_url, demo_workers) -> None:
    ports = {n: port_of(c) for n, c in demo_workers.items()}
    shadow = f"shadows:\n  - {{name: shadow-v2, model_version: v2, endpoints: ['http://127.0.0.1:{ports['challenger']}'], sample_rate: 1.0}}"  # noqa: E501
    config = write_config(tmp_path / "s.yaml", ports, {"champion": 100}, tail=shadow)
    gw = start_gateway(config, redis_url)
    try:
        for i in range(60):
            r = requests.post(
                gw.url + "/predict", json={"features": [x * (i % 3 - 1) for x in ROW]}
            )
            assert r.json()["variant"] == "champion"  # a shadow answer is never returned
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            shadow_stats = decode_stats(Store(redis_url).totals("demo")).shadows.get("shadow-v2")
            if shadow_stats and shadow_stats.requests == 60:
                break
            time.sleep(0.05)
        assert shadow_stats is not None and shadow_stats.requests == 60
        assert shadow_stats.compared == 60
        assert 0 < shadow_stats.agreed <= 60
        metrics = requests.get(gw.url + "/metrics").text
        assert 'abgate_shadow_agreement_ratio{experiment="demo",shadow="shadow-v2"}' in metrics
    finally:
        gw.stop()


def test_metrics_move_with_traffic(tmp_path, redis_url, demo_workers) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    ports = {n: port_of(c) for n, c in demo_workers.items()}
    config = write_config(tmp_path / "m.yaml", ports, {"champion": 50, "challenger": 50})
    gw = start_gateway(config, redis_url)

    types: dict[str, str] = {}

    def scrape() -> dict[tuple[str, tuple], float]:
        text = requests.get(gw.url + "/metrics").text
        out = {}
        for family in text_string_to_metric_families(text):
            types[family.name] = family.type
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out

    try:
        before = scrape()
        assert not [k for k in before if k[0] == "abgate_requests_total"]
        for i in range(40):
            requests.post(
                gw.url + "/predict", json={"features": ROW}, headers={"X-User-ID": str(i)}
            )
        after = scrape()
        ok = sum(v for (name, labels), v in after.items()
                 if name == "abgate_requests_total" and ("status", "ok") in labels)  # fmt: skip
        assert ok == 40
        count = sum(v for (name, _), v in after.items()
                    if name == "abgate_request_duration_seconds_count")  # fmt: skip
        assert count == 40
        weights = {dict(labels)["variant"]: v for (name, labels), v in after.items()
                   if name == "abgate_variant_weight_ratio"}  # fmt: skip
        assert weights == {"champion": 0.5, "challenger": 0.5}
        assert after[("abgate_dropped_outcomes_total", ())] == 0
        # every family declared with HELP and TYPE (the parser says "unknown" otherwise)
        assert "unknown" not in types.values(), types
        assert types["abgate_requests"] == "counter"
        assert types["abgate_request_duration_seconds"] == "histogram"
        assert types["abgate_variant_weight_ratio"] == "gauge"
        buckets = [(dict(labels)["le"], v) for (name, labels), v in after.items()
                   if name == "abgate_request_duration_seconds_bucket"
                   and dict(labels)["variant"] == "champion"]  # fmt: skip
        assert buckets[-1][0] == "+Inf"
        assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    finally:
        gw.stop()


def test_apply_and_status_cli(tmp_path, redis_url, demo_workers) -> None:
    ports = {n: port_of(c) for n, c in demo_workers.items()}
    config = write_config(tmp_path / "a.yaml", ports, {"champion": 90, "canary": 10})
    env = {"REDIS_URL": redis_url}
    applied = abgate("apply", str(config), "--reason", "first", env=env)
    assert applied.returncode == 0, applied.stderr
    assert "version 1" in applied.stdout
    gw = start_gateway(None, redis_url)
    try:
        for i in range(30):
            requests.post(
                gw.url + "/predict", json={"features": ROW}, headers={"X-User-ID": str(i)}
            )

        def recorded() -> dict[str, Any] | None:
            status = json.loads(abgate("status", "demo", "--json", env=env).stdout)[0]
            counted = sum(v["requests"] for v in status["variants"])
            return status if counted == 30 else None

        status = wait_for(recorded, "the 30 requests recorded")
        assert status["config_version"] == 1
        text = abgate("status", env=env).stdout
        assert "demo: config v1" in text and "champion" in text
    finally:
        gw.stop()
    bad = tmp_path / "bad.yaml"
    bad.write_text(config.read_text().replace("weight: 90", "weight: 95"))
    refused = abgate("apply", str(bad), env=env)
    assert refused.returncode == 1
    assert f"{bad}:" in refused.stderr and "sum to 100" in refused.stderr
    assert Store(redis_url).get_config("demo").version == 1  # the bad file never replaced it


def test_status_without_redis_is_one_line() -> None:
    result = abgate("status", env={"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"})
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1


def test_up_starts_everything_and_ctrl_c_stops_it(tmp_path, demo_registry) -> None:
    ports = {"champion": free_port(), "challenger": free_port(), "canary": free_port()}
    config = write_config(tmp_path / "up.yaml", ports,
                          {"champion": 80, "challenger": 10, "canary": 10})  # fmt: skip
    gateway_port = free_port()
    env = {"ABGATE_REGISTRY_DIR": str(demo_registry.root), "ABGATE_STATE_DIR": str(tmp_path)}
    env.pop("REDIS_URL", None)
    child = start_child(
        "up",
        [
            sys.executable,
            "-m",
            "abgate",
            "up",
            "--config",
            str(config),
            "--port",
            str(gateway_port),
        ],
        env={**env, "REDIS_URL": ""},
    )
    try:
        wait_http_ok(f"http://127.0.0.1:{gateway_port}/ready", child=child, timeout=90)
        answer = requests.post(f"http://127.0.0.1:{gateway_port}/predict", json={"features": ROW})
        assert answer.status_code == 200 and answer.json()["status"] == "success"
    finally:
        code = child.stop(sig=signal.SIGINT, timeout=30)
    assert code == 0
    for port in (*ports.values(), gateway_port):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/health", timeout=1)
