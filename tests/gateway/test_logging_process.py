"""Logs of real processes: one request followed from the gateway to the worker; no secrets.

Every child's output goes to its own file through the same prefixing pump
``abgate up`` uses (``NAME | line``); the tests parse those lines back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import orjson
import pytest
import requests

from abgate.processes import Child
from abgate.redis_server import free_port, start_redis
from model_workers.registry import ModelRegistry
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, start_worker, write_config

pytestmark = pytest.mark.integration

JSON_LOGS = {"ABGATE_LOG_FORMAT": "json", "ABGATE_LOG_LEVEL": "info"}
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
# Feature values with digits no log line would carry by chance.
SECRET_ROW = [0.7310585786, 1.6180339887, 2.7182818284, 0.5772156649, 1.4142135623,
              1.7320508075, 2.2360679774, 0.6931471805, 1.2020569031, 0.9159655941]  # fmt: skip
SECRET_FRAGMENTS = ["7310585", "6180339", "7182818", "5772156", "4142135", "7320508",
                    "2360679", "6931471", "2020569", "9159655", "1415926", "6692016"]  # fmt: skip


class Logs:
    """Files the children's prefixed output is copied to."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.files: list[IO[str]] = []

    def file(self, name: str) -> IO[str]:
        handle = (self.root / f"{name}.log").open("w")
        self.files.append(handle)
        return handle

    def lines(self) -> list[tuple[str, str]]:
        """(file name, line without its ``NAME | `` prefix) for every line written so far."""
        found = []
        for path in sorted(self.root.glob("*.log")):
            for line in path.read_text().splitlines():
                prefix, _, text = line.partition(" | ")
                assert prefix.strip() in ("gateway", "worker-v1", "worker-v3"), line
                found.append((path.stem, text))
        return found

    def records(self) -> list[dict[str, Any]]:
        """Every line as JSON (each must be one JSON object)."""
        return [orjson.loads(text) for _, text in self.lines()]

    def wait_for(self, *checks: Callable[[dict[str, Any]], bool], timeout: float = 20.0) -> None:
        """Until, for every check, some record passes it."""
        deadline = time.monotonic() + timeout
        while True:
            records = self.records()
            if all(any(check(r) for r in records) for check in checks):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"no matching log record within {timeout}s: {records}")
            time.sleep(0.05)

    def close(self) -> None:
        for handle in self.files:
            handle.close()


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logs]:
    collected = Logs(tmp_path_factory.mktemp("logs"))
    yield collected
    collected.close()


@pytest.fixture(scope="module")
def logged_workers(demo_registry: ModelRegistry, logs: Logs) -> Iterator[dict[str, Child]]:
    """Workers v1 and v3 writing JSON logs (with the admin token in their environment)."""
    env = {**JSON_LOGS, "ABGATE_ADMIN_TOKEN": ADMIN_TOKEN}
    children: dict[str, Child] = {}
    try:
        for name, version in (("champion", "v1"), ("canary", "v3")):
            children[name] = start_worker(
                demo_registry, version, env=env, log=logs.file(f"worker-{version}")
            )
        yield children
    finally:
        for child in children.values():
            child.stop()


def _post(gateway: Child, request_id: str, **headers: str) -> requests.Response:
    response = requests.post(
        gateway.url + "/predict",
        json={"features": SECRET_ROW},
        headers={"X-Request-ID": request_id, "X-User-ID": request_id, **headers},
    )
    assert response.status_code == 200, response.text
    return response


def test_one_request_is_followed_from_gateway_to_worker(
    tmp_path: Path,
    redis_url: str,
    demo_registry: ModelRegistry,
    logged_workers: dict[str, Child],
    logs: Logs,
) -> None:
    ports = {name: port_of(child) for name, child in logged_workers.items()}
    config = write_config(tmp_path / "demo.yaml", ports, {"champion": 50, "canary": 50})
    gateway = start_gateway(
        config, redis_url, log=logs.file("gateway-traced"), ABGATE_ACCESS_LOG_RATE="1", **JSON_LOGS
    )
    try:
        answer = _post(gateway, "follow-me-1").json()
        _post(gateway, "follow-me-2", traceparent=f"00-{TRACE}-{PARENT}-00")
        _post(gateway, "follow-me-3", traceparent=f"00-{'0' * 32}-{PARENT}-01")

        def access(rid: str) -> Callable[[dict[str, Any]], bool]:
            return lambda r: r.get("logger") == "abgate.access" and r.get("request_id") == rid

        def worker(rid: str) -> Callable[[dict[str, Any]], bool]:
            return lambda r: r.get("logger") == "abgate.worker" and r.get("request_id") == rid

        rids = ("follow-me-1", "follow-me-2", "follow-me-3")
        logs.wait_for(*(access(r) for r in rids), *(worker(r) for r in rids))
    finally:
        gateway.stop()
    records = logs.records()

    def one(check: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        (record,) = [r for r in records if check(r)]
        return record

    gw, wk = one(access("follow-me-1")), one(worker("follow-me-1"))
    served = logged_workers["champion" if answer["variant"] == "champion" else "canary"]
    assert gw["msg"] == "predict" and gw["process"] == "gateway" and gw["level"] == "info"
    assert gw["experiment"] == "demo" and gw["status"] == 200
    assert (gw["variant"], gw["model_version"]) == (answer["variant"], answer["model_version"])
    assert gw["endpoint"] == served.url and gw["fallback"] is False and gw["error"] is None
    assert gw["shadows"] == {} and gw["sampled"] is True and gw["parent_id"] is None
    assert isinstance(gw["latency_ms"], float) and gw["latency_ms"] > 0
    assert gw["ts"].endswith("Z") and "features" not in gw
    assert len(gw["trace_id"]) == 32 and len(gw["span_id"]) == 16
    # The worker logged the same trace, with the gateway's span as its parent.
    assert wk["process"] == "worker" and wk["status"] == 200
    assert (wk["trace_id"], wk["parent_id"]) == (gw["trace_id"], gw["span_id"])
    assert wk["model_version"] == answer["model_version"] and wk["latency_ms"] > 0

    # A valid incoming trace is continued; an invalid one (all-zero id) is replaced.
    continued = one(access("follow-me-2"))
    assert (continued["trace_id"], continued["parent_id"]) == (TRACE, PARENT)
    assert one(worker("follow-me-2"))["trace_id"] == TRACE
    restarted = one(access("follow-me-3"))
    assert restarted["trace_id"] not in (TRACE, "0" * 32) and restarted["parent_id"] is None
    assert one(worker("follow-me-3"))["trace_id"] == restarted["trace_id"]

    # Each worker logged its model load: version, the registry's sha256, the time it took.
    for version in ("v1", "v3"):
        loaded = one(
            lambda r, v=version: r.get("msg") == "model loaded" and r["model_version"] == v
        )
        assert loaded["sha256"] == demo_registry.metadata("demo", version)["sha256"]
        assert loaded["load_ms"] > 0


def _drive_errors(gateway: Child, stop_redis: Callable[[], None]) -> None:
    """Bad token, bad bodies, a dead canary, an unknown model, Redis going down."""
    url = gateway.url
    assert url is not None
    wrong = {"Authorization": "Bearer not-the-token-789"}
    assert requests.get(url + "/admin/experiments", headers=wrong).status_code == 401
    ok = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert requests.get(url + "/admin/experiments", headers=ok).status_code == 200
    for i in range(20):  # half of the units land on the dead canary and fall back
        response = requests.post(
            url + "/predict",
            json={"features": SECRET_ROW},
            headers={"X-User-ID": f"user-{i}", "Authorization": "Bearer auth-header-000"},
        )
        assert response.status_code == 200, response.text
    bad = requests.post(url + "/predict", data=b'{"features": [3.1415926535, "oops"]}')
    assert bad.status_code == 400
    short = requests.post(url + "/predict", json={"features": [4.6692016091, 2.5]})
    assert short.status_code == 400  # the worker refuses the width; the gateway passes it on
    assert requests.post(url + "/v1/nope/predict", json={"features": SECRET_ROW}).status_code
    assert requests.post(url + "/predict", data=b"{not json").status_code == 400
    stop_redis()
    # Kept in the gateway until Redis is back (docs/gateway.md#feedback), not an error.
    feedback = requests.post(url + "/feedback", json={"request_id": "gone", "label": 1})
    assert feedback.status_code == 202 and feedback.json()["waiting"] == "waiting for Redis"
    requests.post(url + "/predict", json={"features": SECRET_ROW})


def _run_error_scenario(
    tmp_path: Path, worker: Child, logs: Logs, name: str, **env: str
) -> list[dict[str, Any]]:
    redis = start_redis(persistence=False)
    try:
        config = write_config(
            tmp_path / "demo.yaml",
            {"champion": port_of(worker), "canary": free_port()},  # nothing listens there
            {"champion": 50, "canary": 50},
        )
        gateway = start_gateway(config, redis.url, log=logs.file(name), **JSON_LOGS, **env)
        try:
            _drive_errors(gateway, redis.stop)
            logs.wait_for(
                lambda r: r.get("error") == "connect_error" and r.get("fallback") is True,
                lambda r: r.get("msg", "").startswith("recording paused"),
                lambda r: r.get("msg", "").startswith("admin request refused"),
            )
        finally:
            gateway.stop()
    finally:
        redis.stop()
    return [
        orjson.loads(text) for path_name, text in logs.lines() if path_name in (name, "worker-v1")
    ]


def test_no_secret_or_feature_value_reaches_a_log_at_default_settings(
    tmp_path: Path, logged_workers: dict[str, Child], logs: Logs
) -> None:
    records = _run_error_scenario(tmp_path, logged_workers["champion"], logs, "gateway-errors")
    text = "\n".join(orjson.dumps(r).decode() for r in records)
    for secret in (ADMIN_TOKEN, "not-the-token-789", "auth-header-000", *SECRET_FRAGMENTS):
        assert secret not in text, secret
    # The failures themselves are there, each once, with their context.
    fallbacks = [r for r in records if r.get("fallback") is True]
    assert fallbacks and all(r["level"] == "warning" and r["variant"] == "champion"
                             and r["assigned_variant"] == "canary" for r in fallbacks)  # fmt: skip
    refused = [r for r in records if r.get("msg", "").startswith("admin request refused")]
    assert len(refused) == 1 and refused[0]["path"] == "/admin/experiments"


def test_feature_values_are_logged_only_when_enabled_for_debugging(
    tmp_path: Path, logged_workers: dict[str, Child], logs: Logs
) -> None:
    records = _run_error_scenario(
        tmp_path, logged_workers["champion"], logs, "gateway-debug", ABGATE_LOG_PAYLOADS="true"
    )
    logged = [r["features"] for r in records if r.get("fallback") is True]
    assert SECRET_ROW in logged
    text = "\n".join(orjson.dumps(r).decode() for r in records)
    assert all(fragment in text for fragment in SECRET_FRAGMENTS[:10])
    assert ADMIN_TOKEN not in text and "not-the-token-789" not in text
