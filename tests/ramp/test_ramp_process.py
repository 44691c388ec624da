"""The ramp end to end: real Redis, real workers, a real gateway, real traffic."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import orjson
import pytest

from abgate.loadgen import run_load
from abgate.processes import Child
from abgate.redis_server import free_port
from core.store import Store
from tests.conftest import port_of, start_gateway, write_config

pytestmark = pytest.mark.integration

STATS = "statistics: {alpha: 0.05, sequential: true, tuning_n: 500, min_samples: 50, mde: 0.05}"


def ramp_tail(
    steps: str = "[10, 50, 100]",
    min_duration: float = 2,
    min_samples: int = 40,
    max_duration: float = 90,
    p99_ratio: float = 1.5,
    on_expiry: str = "rollback",
) -> str:
    return (
        f"{STATS}\n"
        "metrics: {guardrails: [{name: error_rate, max_absolute_increase: 0.01}, "
        f"{{name: p99_latency_ms, max_ratio: {p99_ratio}}}]}}\n"
        f"ramp: {{variant: canary, steps: {steps}, min_duration_s: {min_duration}, "
        f"min_samples: {min_samples}, check_interval_s: 0.5, max_duration_s: {max_duration}, "
        f"non_inferiority_margin: 0.02, on_expiry: {on_expiry}}}"
    )


@contextmanager
def traffic(url: str, rate: float = 250) -> Iterator[None]:
    stop = threading.Event()
    thread = threading.Thread(
        target=lambda: asyncio.run(run_load(url, rate=rate, duration_s=300, stop=stop)),
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def ramp(
    config, redis_url: str, out, timeout: float = 150, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abgate", "ramp", str(config), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "REDIS_URL": redis_url, **env},
    )


def weights_history(redis_url: str, name: str = "demo") -> list[dict]:
    return [e for e in Store(redis_url).audit(name, count=1000) if e["actor"] == "ramp-controller"]


@contextmanager
def watched_weights(redis_url: str, name: str = "demo") -> Iterator[list[float]]:
    """The canary weight of the live config, read every 50 ms while the block runs."""
    seen: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        store = Store(redis_url)
        while not stop.is_set():
            variants = store.get_config(name).config["variants"]
            seen.extend(v["weight"] for v in variants if v["name"] == "canary")
            stop.wait(0.05)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.fixture
def setup(tmp_path, redis_url: str, demo_workers: dict[str, Child]):
    def make(canary: str = "canary", canary_port: int | None = None, **tail_args):
        ports = {n: port_of(c) for n, c in demo_workers.items()}
        ports["canary"] = canary_port or ports[canary]
        roles = {"canary": "canary", "challenger": "canary"}
        config = write_config(
            tmp_path / "ramp.yaml",
            ports,
            {"champion": 100, "canary": 0},
            tail=ramp_tail(**tail_args),
        )
        if canary == "challenger":  # the better model (v2) as the canary
            config.write_text(config.read_text().replace("model_version: v3", "model_version: v2"))
        del roles
        gateway = start_gateway(config, redis_url)
        return config, gateway

    gateways: list[Child] = []

    def wrapped(**kwargs):
        config, gateway = make(**kwargs)
        gateways.append(gateway)
        return config, gateway

    yield wrapped
    for gateway in gateways:
        gateway.stop()


def test_worse_canary_is_rolled_back_and_never_reaches_100(setup, redis_url, tmp_path) -> None:
    # The ramp ends as soon as harm is shown; max_duration only bounds a machine so busy
    # that the traffic (and so the evidence) comes slowly, and stays below the 300 s of traffic.
    config, gateway = setup(min_duration=3, min_samples=150, max_duration=280)
    with traffic(gateway.url):
        result = ramp(config, redis_url, tmp_path / "out", timeout=400)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "ROLLED BACK canary" in result.stdout
    history = weights_history(redis_url)
    weights = [e["evidence"].get("weight") for e in history if "weight" in (e["evidence"] or {})]
    assert 100 not in weights and 100.0 not in weights
    # never more than the first step: harm was shown before any advance
    assert max(weights) == 10, weights
    # harm shown (a busy machine's p99 may trip its guardrail first)
    assert history[-1]["action"] == "rollback"
    assert history[-1]["evidence"]["rule"] in ("harm", "guardrail:p99_latency_ms")
    final = Store(redis_url).get_config("demo").config["variants"]
    assert {v["name"]: v["weight"] for v in final} == {"champion": 100, "canary": 0}
    assert Store(redis_url).ramp_state("demo")["status"] == "rolled_back"
    # the report leads with the ramp's ending and carries no whole-ramp SRM alarm
    report = (tmp_path / "out" / "demo-ramp-report.md").read_text()
    assert report.startswith("## Ramp of canary in demo: ROLLED BACK")
    assert "Sample-ratio mismatch" not in report and "MISMATCH" not in report
    assert (tmp_path / "out" / "demo-ramp-report.html").is_file()
    for entry in history:  # time, actor and evidence on every change
        assert entry["ts"] and entry["actor"] == "ramp-controller" and entry["evidence"] is not None


def test_worse_canary_never_serves_more_than_the_first_step(setup, redis_url, tmp_path) -> None:
    """Every config version the gateways followed gave the canary at most the first step."""
    config, gateway = setup(steps="[5, 25, 50]", min_duration=1, min_samples=20)
    with traffic(gateway.url), watched_weights(redis_url) as seen:
        result = ramp(config, redis_url, tmp_path / "out")
    # Rolled back for harm, or, when a busy machine's traffic is too slow to show the harm
    # at 5 % within max_duration_s, expired (and rolled back): either way never past 5 %.
    assert result.returncode in (3, 4), result.stdout + result.stderr
    assert seen and max(seen) == 5, sorted(set(seen))
    audited = [e["evidence"].get("weight") for e in weights_history(redis_url)]
    assert max(w for w in audited if w is not None) == 5


def test_a_ramp_that_runs_out_of_time_expires_and_can_hold(setup, redis_url, tmp_path) -> None:
    config, gateway = setup(
        canary="challenger", steps="[20, 60]", min_duration=2, min_samples=10**7,
        max_duration=4, p99_ratio=50, on_expiry="hold",
    )  # fmt: skip
    with traffic(gateway.url):
        result = ramp(config, redis_url, tmp_path / "out")
    assert result.returncode == 4, result.stdout + result.stderr
    assert "EXPIRED canary (max_duration)" in result.stdout
    store = Store(redis_url)
    final = {v["name"]: v["weight"] for v in store.get_config("demo").config["variants"]}
    assert final == {"champion": 80, "canary": 20}  # held for a person
    assert store.ramp_state("demo")["status"] == "expired"
    assert store.audit("demo", count=10)[-1]["action"] == "ramp_expired"
    status = subprocess.run(
        [sys.executable, "-m", "abgate", "status", "demo"], capture_output=True, text=True,
        env={**os.environ, "REDIS_URL": redis_url}, timeout=60,
    )  # fmt: skip
    assert "ramp: EXPIRED (not shown good enough in time) at step 1 (20 %)" in status.stdout


def test_failing_canary_is_rolled_back_at_the_first_check(setup, redis_url, tmp_path) -> None:
    config, gateway = setup(canary_port=free_port(), min_duration=1, min_samples=20)
    with traffic(gateway.url):
        started = time.monotonic()
        result = ramp(config, redis_url, tmp_path / "out", ABGATE_LOG_FORMAT="json")
        elapsed = time.monotonic() - started
    assert result.returncode == 3, result.stdout + result.stderr
    assert (
        Store(redis_url).audit("demo", count=100)[-1]["evidence"]["rule"] == "guardrail:error_rate"
    )
    assert elapsed < 30
    # Every decision is logged (JSON lines in ramp-NAME.log) with its evidence; the rollback last.
    log = tmp_path / "out" / "ramp-demo.log"
    records = [orjson.loads(line) for line in log.read_text().splitlines()]
    decisions = [r for r in records if r["msg"] == "ramp decision"]
    assert decisions
    assert all(r["process"] == "ramp" and r["experiment"] == "demo" for r in decisions)
    last = decisions[-1]
    assert (last["action"], last["rule"], last["level"]) == ("rollback", "guardrail:error_rate",
                                                             "warning")  # fmt: skip
    assert last["evidence"] and last["weight"] == 10


def test_better_model_is_promoted(setup, redis_url, tmp_path, demo_registry) -> None:
    config, gateway = setup(
        canary="challenger", steps="[20, 60, 100]", min_duration=1.5, min_samples=40, p99_ratio=50
    )
    with traffic(gateway.url):
        result = ramp(config, redis_url, tmp_path / "out")
    assert result.returncode == 0, result.stdout + result.stderr
    final = {v["name"]: v for v in Store(redis_url).get_config("demo").config["variants"]}
    assert final["canary"]["role"] == "champion" and final["canary"]["weight"] == 100
    # 100 % came with the promotion, in one config change, never as a step
    promotions = [e for e in weights_history(redis_url) if e["evidence"].get("weight") == 100]
    assert [e["action"] for e in promotions] == ["promote"]
    report = (tmp_path / "out" / "demo-ramp-report.md").read_text()
    assert report.startswith("## Ramp of canary in demo: PROMOTED")
    assert "Sample-ratio mismatch" not in report


def test_interrupted_ramp_resumes_and_a_second_one_is_refused(setup, redis_url, tmp_path) -> None:
    config, gateway = setup(
        canary="challenger",
        steps="[10, 30, 60, 100]",
        min_duration=2,
        min_samples=100,
        p99_ratio=50,
    )
    env = {**os.environ, "REDIS_URL": redis_url}
    argv = [sys.executable, "-m", "abgate", "ramp", str(config), "--out", str(tmp_path)]
    with traffic(gateway.url):
        first = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = Store(redis_url).ramp_state("demo")
            if state and state["step"] >= 1:
                break
            time.sleep(0.2)
    # No traffic now: the ramp holds at step 1 (100 canary samples there take > 1 s at
    # 250 requests/s), however long a busy machine takes to start the second one.
    second = ramp(config, redis_url, tmp_path, timeout=60)
    assert second.returncode == 1
    assert "already running" in second.stderr and len(second.stderr.strip().splitlines()) == 1
    assert first.poll() is None, "the first ramp ended before Ctrl-C"
    first.send_signal(2)  # Ctrl-C
    _, err = first.communicate(timeout=30)
    assert first.returncode == 130 and "paused" in err
    step = Store(redis_url).ramp_state("demo")["step"]
    assert step == 1
    with traffic(gateway.url):
        resumed = ramp(config, redis_url, tmp_path)
    assert f"resuming the ramp of demo at step {step + 1}" in resumed.stdout
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
