"""The dashboard's data (pure) and its routes on a real gateway: login, cookie, JSON."""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from abgate.processes import Child
from core.schema import StatsHash, decode_epochs, decode_stats, epoch_record
from experiments.config import ExperimentConfig
from gateway.dashboard_data import AUDIT_ROWS, dashboard_payload, window_series
from gateway.outcomes import OutcomeAggregator
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, write_config
from tests.waiting import wait_for

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def config(weights: dict[str, float], *, ramp: bool = False) -> ExperimentConfig:
    variants = [
        {"name": name, "role": name,
         "model_version": f"v{i + 1}", "endpoints": [f"http://127.0.0.1:{9000 + i}"],
         "weight": weight}
        for i, (name, weight) in enumerate(weights.items())
    ]  # fmt: skip
    raw = {"name": "demo", "model": "demo", "seed": "s", "variants": variants}
    if ramp:
        raw["ramp"] = {"steps": [5, 50, 100]}
    return ExperimentConfig.model_validate(raw)


def windows_of(agg: OutcomeAggregator) -> dict[int, StatsHash]:
    return {start: decode_stats(delta) for (_, start), delta in sorted(agg.drain().items())}


# --- pure ------------------------------------------------------------------------------


def test_window_series_rates_error_rates_and_p99() -> None:
    agg = OutcomeAggregator(window_s=10)
    for i in range(50):  # window 100: 50 champion requests, 5 failed, latencies 1..45 ms
        ok = i >= 5
        agg.add_request("demo", "champion", 1, ok=ok, client_error=False,
                        latency_ms=float(i), fallback=False, ts=100 + i * 0.1)  # fmt: skip
    agg.add_request("demo", "canary", 1, ok=True, client_error=False, latency_ms=3.0,
                    fallback=False, ts=112)  # fmt: skip
    points = window_series(windows_of(agg), ["champion", "canary"], window_s=10, now=114.0)
    assert [p["start"] for p in points] == [100, 110]
    first, current = points
    assert first["seconds"] == 10 and current["seconds"] == 4.0  # still filling: elapsed only
    assert first["variants"]["champion"]["rps"] == 5.0
    assert first["variants"]["champion"]["error_rate"] == 0.1
    assert 40 < first["variants"]["champion"]["p99_ms"] <= 49 * 1.25
    # No canary request in window 100: a gap, not a zero.
    assert first["variants"]["canary"] == {
        "requests": 0, "rps": 0.0, "error_rate": None, "p99_ms": None
    }  # fmt: skip
    assert current["variants"]["canary"]["rps"] == 0.25
    assert current["variants"]["champion"]["requests"] == 0


def test_window_that_just_opened_is_not_charted() -> None:
    agg = OutcomeAggregator(window_s=10)
    agg.add_request("demo", "champion", 1, ok=True, client_error=False, latency_ms=1.0,
                    fallback=False, ts=120.1)  # fmt: skip
    assert window_series(windows_of(agg), ["champion"], window_s=10, now=120.2) == []


def test_payload_split_primary_ramp_audit_and_no_drift() -> None:
    cfg = config({"champion": 80, "canary": 20}, ramp=True)
    agg = OutcomeAggregator(window_s=60)
    for variant, n, correct in (("champion", 400, 300), ("canary", 100, 90)):
        for i in range(n):
            agg.add_request("demo", variant, 3, ok=True, client_error=False, latency_ms=2.0,
                            fallback=False, ts=60.0)  # fmt: skip
            agg.add_metric("demo", variant, 3, "accuracy", float(i < correct), ts=60.0)
    totals = windows_of(agg)[60]
    epochs = decode_epochs(
        {"3": epoch_record(cfg.model_dump(mode="json"), paused=False, started_at=60.0)}, totals
    )
    audit = [{"ts": f"t{i}", "actor": "a", "action": "set_weights", "reason": str(i),
              "version": str(i), "evidence": {"rule": "r"}} for i in range(40)]  # fmt: skip
    payload = dashboard_payload(
        cfg, version=3, paused=False, epochs=epochs, windows={60: totals}, first_window=60,
        ramp_state={"step": 1, "status": "running", "step_started_at": 90.0,
                    "ramp_baseline": {"x": "1"}},
        audit=audit, window_s=60, now=130.0, experiments=["demo"],
    )  # fmt: skip
    split = {a["variant"]: a for a in payload["split"]}
    assert split["champion"]["configured_share"] == 0.8
    assert split["canary"]["observed_share"] == 0.2
    assert split["canary"]["requests"] == 100
    assert split["canary"]["expected_share"] == 0.2  # the split check's, epoch 3's weights
    assert payload["srm"]["epochs"][0]["version"] == 3 and not payload["srm"]["mismatch"]
    (canary,) = payload["primary"]["variants"]
    assert canary["variant"] == "canary"
    assert canary["means"] == {"champion": 0.75, "variant": 0.9}
    assert canary["estimate"] == pytest.approx(0.2)  # relative lift: 0.9 / 0.75 - 1
    assert canary["ci"][0] < canary["estimate"] < canary["ci"][1]
    assert payload["primary"]["interval"] == "95% confidence sequence"
    assert payload["ramp"] == {
        "variant": "canary", "steps": [5, 50, 100], "weight": 20, "step": 1,
        "status": "running", "step_started_at": 90.0, "min_duration_s": 30, "min_samples": 200,
    }  # fmt: skip
    assert len(payload["audit"]) == AUDIT_ROWS
    assert payload["audit"][0]["reason"] == "39" and payload["audit"][0]["rule"] == "r"
    assert "drift" not in payload  # the page then says "no drift data"
    assert payload["verdicts"][0]["variant"] == "canary"
    assert set(payload["colours"]) == {"champion", "canary"}


def test_payload_passes_drift_through() -> None:
    cfg = config({"champion": 50, "canary": 50})
    rows = [{"feature": "f0", "psi": 0.31, "drifted": True}]
    payload = dashboard_payload(
        cfg, version=1, paused=True, epochs=[], windows={}, first_window=None, ramp_state=None,
        audit=[], window_s=60, now=1.0, experiments=["demo"], drift=rows,
    )  # fmt: skip
    assert payload["drift"] == rows
    assert payload["ramp"] is None
    assert payload["series"] == []
    assert [a["observed_share"] for a in payload["split"]] == [None, None]


# --- routes on a real gateway ------------------------------------------------------------


@pytest.fixture
def gateway(tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]) -> Iterator[Child]:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    path = write_config(tmp_path / "demo.yaml", ports, {"champion": 90, "canary": 10})
    child = start_gateway(path, redis_url)
    yield child
    child.stop()


@pytest.mark.integration
def test_page_and_assets_are_served_from_the_package(gateway: Child) -> None:
    page = requests.get(f"{gateway.url}/dashboard", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http://" not in page.text and "https://" not in page.text  # nothing from a CDN
    for name, kind in (("dashboard.js", "text/javascript"), ("dashboard.css", "text/css")):
        asset = requests.get(f"{gateway.url}/dashboard/static/{name}", timeout=10)
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert f"/dashboard/static/{name}" in page.text
    missing = requests.get(f"{gateway.url}/dashboard/static/secret.py", timeout=10)
    assert missing.status_code == 404 and "secret.py" in missing.json()["error"]


@pytest.mark.integration
def test_login_sets_a_strict_httponly_session_cookie(gateway: Child) -> None:
    data = f"{gateway.url}/dashboard/data"
    assert requests.get(data, timeout=10).status_code == 401
    session = requests.Session()
    wrong = session.post(f"{gateway.url}/dashboard/login", data={"token": "nope"}, timeout=10)
    assert wrong.status_code == 401 and wrong.json()["error"] == "wrong admin token"
    empty = session.post(f"{gateway.url}/dashboard/login", data={}, timeout=10)
    assert empty.status_code == 400 and "token" in empty.json()["error"]
    huge = session.post(f"{gateway.url}/dashboard/login", data={"token": "x" * 5000}, timeout=10)
    assert huge.status_code == 400
    ok = session.post(f"{gateway.url}/dashboard/login", data={"token": ADMIN_TOKEN}, timeout=10)
    assert ok.status_code == 204
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and ADMIN_TOKEN not in cookie
    answer = session.get(data, timeout=10)
    assert answer.status_code == 200 and answer.json()["experiment"] == "demo"
    session.post(f"{gateway.url}/dashboard/logout", timeout=10)
    assert session.get(data, timeout=10).status_code == 401


@pytest.mark.integration
def test_token_link_becomes_the_cookie_and_leaves_the_url(gateway: Child) -> None:
    wrong = requests.get(f"{gateway.url}/dashboard?token=nope", timeout=10, allow_redirects=False)
    assert wrong.status_code == 401
    session = requests.Session()
    link = session.get(
        f"{gateway.url}/dashboard?token={ADMIN_TOKEN}", timeout=10, allow_redirects=False
    )
    assert link.status_code == 303 and link.headers["location"] == "/dashboard"
    assert link.headers["referrer-policy"] == "no-referrer"
    assert session.get(f"{gateway.url}/dashboard/data", timeout=10).status_code == 200
    forged = requests.get(f"{gateway.url}/dashboard/data", timeout=10,
                          cookies={"abgate_dashboard": ADMIN_TOKEN})  # fmt: skip
    assert forged.status_code == 401


@pytest.mark.integration
def test_data_counts_what_the_gateway_served(gateway: Child) -> None:
    session = requests.Session()
    served: collections.Counter[str] = collections.Counter()
    for i in range(120):
        r = session.post(f"{gateway.url}/predict", json={"features": ROW},
                         headers={"X-User-ID": f"u{i}"}, timeout=10)  # fmt: skip
        assert r.status_code == 200
        served[r.headers["X-Variant"]] += 1

    def shown() -> dict[str, Any] | None:
        data = requests.get(f"{gateway.url}/dashboard/data", headers=AUTH, timeout=10).json()
        counts = {a["variant"]: a["requests"] for a in data["split"] if a["requests"]}
        return data if counts == dict(served) else None

    data = wait_for(shown, f"the dashboard to show {dict(served)}")
    assert [a["configured_share"] for a in data["split"]] == [0.9, 0.1]
    assert sum(p["variants"]["champion"]["requests"] for p in data["series"]) == served["champion"]
    assert data["audit"][0]["action"] == "apply"
    unknown = requests.get(f"{gateway.url}/dashboard/data?experiment=nope", headers=AUTH,
                           timeout=10)  # fmt: skip
    assert unknown.status_code == 404 and "demo" in unknown.json()["error"]


@pytest.mark.integration
def test_without_an_admin_token_the_dashboard_is_open(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    path = write_config(tmp_path / "demo.yaml", ports, {"champion": 100})
    child = start_gateway(path, redis_url, ABGATE_ADMIN_TOKEN="")
    try:
        answer = requests.get(f"{child.url}/dashboard/data", timeout=10)
        assert answer.status_code == 200 and answer.json()["login_required"] is False
    finally:
        child.stop()


@pytest.mark.parametrize("configured", [True, False])
def test_payload_lists_every_configured_guardrail_with_its_result(configured: bool) -> None:
    raw = config({"champion": 50, "canary": 50}).model_dump(mode="json")
    raw["metrics"]["guardrails"] = (
        [{"name": "mean_latency_ms", "max_ratio": 1.2}, {"name": "p95_latency_ms", "max_ratio": 3}]
        if configured
        else []
    )
    cfg = ExperimentConfig.model_validate(raw)
    agg = OutcomeAggregator(window_s=60)
    for variant, latency in (("champion", 10.0), ("canary", 20.0)):  # the canary: 2x slower
        for i in range(500):
            agg.add_request("demo", variant, 1, ok=True, client_error=False,
                            latency_ms=latency + i % 7, fallback=False, ts=60.0)  # fmt: skip
    totals = windows_of(agg)[60]
    epochs = decode_epochs({"1": epoch_record(raw, paused=False, started_at=60.0)}, totals)
    payload = dashboard_payload(
        cfg, version=1, paused=False, epochs=epochs, windows={60: totals}, first_window=60,
        ramp_state=None, audit=[], window_s=60, now=130.0, experiments=["demo"],
    )  # fmt: skip
    (canary,) = payload["guardrails"]
    checks = [(c["rule"], c["limit"], c["threshold"], c["status"]) for c in canary["checks"]]
    (verdict,) = payload["verdicts"]
    if not configured:
        assert checks == [] and not verdict["rule"].startswith("guardrail:")
        return
    # Mean latency from the recorder's latency sums; p95 from its histogram.
    assert checks == [
        ("guardrail:mean_latency_ms", "max_ratio", 1.2, "failed"),
        ("guardrail:p95_latency_ms", "max_ratio", 3, "ok"),
    ]
    assert verdict["rule"] == "guardrail:mean_latency_ms"
