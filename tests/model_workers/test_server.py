from __future__ import annotations

import math

import pytest
import requests
from fastapi.testclient import TestClient

from abgate.processes import Child
from core.settings import Settings
from model_workers.registry import ModelRegistry
from model_workers.runtime import SklearnRuntime
from model_workers.server import create_worker_app

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


@pytest.fixture(scope="module")
def client(demo_registry: ModelRegistry) -> TestClient:
    runtime = SklearnRuntime(demo_registry.load("demo", "v2"))
    settings = Settings(max_body_bytes=4096, max_batch_size=5)
    return TestClient(create_worker_app(settings, runtime), raise_server_exceptions=False)


def _assert_error(response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert fragment in body["error"], body


def test_predict_classic_contract(client: TestClient) -> None:
    body = client.post("/predict", json={"features": ROW}).json()
    assert body["status"] == "success"
    assert isinstance(body["prediction"], int)
    assert len(body["probability"]) == 2
    assert math.isclose(sum(body["probability"]), 1.0, rel_tol=1e-9)
    assert body["model_version"] == "v2"


def test_batch_matches_single(client: TestClient) -> None:
    rows = [ROW, [x * -1 for x in ROW]]
    batch = client.post("/predict/batch", json={"instances": rows}).json()
    singles = [client.post("/predict", json={"features": r}).json() for r in rows]
    assert batch["predictions"] == [s["prediction"] for s in singles]
    assert batch["probabilities"] == [s["probability"] for s in singles]


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"features": ROW[:9]}, 400, "expected 10 features, got 9"),
        ({"features": [*ROW, 1.0]}, 400, "expected 10 features, got 11"),
        ({"features": [*ROW[:9], "x"]}, 422, "features.9"),
        ({"features": [*ROW[:9], "0.5"]}, 422, "features.9"),
        ({"features": [*ROW[:9], True]}, 422, "features.9"),
        ({"features": [*ROW[:9], None]}, 422, "features.9"),
        ({"features": "not a list"}, 422, "features"),
        ({}, 422, "features: field required"),
        ([], 422, "body"),
        ({"instances": []}, 422, "features: field required"),
    ],
)
def test_bad_predict_input(client: TestClient, payload, status: int, fragment: str) -> None:
    _assert_error(client.post("/predict", json=payload), status, fragment)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers(client: TestClient, literal: str) -> None:
    raw = "[" + ", ".join(map(str, ROW[:9])) + f", {literal}]"
    response = client.post(
        "/predict",
        content='{"features": ' + raw + "}",
        headers={"content-type": "application/json"},
    )
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["status"] == "error"


def test_malformed_json(client: TestClient) -> None:
    response = client.post(
        "/predict", content=b'{"features": [1, 2', headers={"content-type": "application/json"}
    )
    _assert_error(response, 400, "malformed JSON")


def test_oversized_body(client: TestClient) -> None:
    big = {"features": [0.5] * 5000}
    _assert_error(client.post("/predict", json=big), 413, "over the limit of 4096 bytes")


def test_oversized_body_without_content_length(client: TestClient) -> None:
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    response = client.post(
        "/predict", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_error(response, 413, "over the limit")


def test_batch_limits(client: TestClient) -> None:
    _assert_error(client.post("/predict/batch", json={"instances": []}), 400, "at least one row")
    _assert_error(
        client.post("/predict/batch", json={"instances": [ROW] * 6}), 400, "at most 5 rows"
    )
    _assert_error(
        client.post("/predict/batch", json={"instances": [ROW, ROW[:3]]}), 400, "instances.1"
    )


def test_unknown_route_is_json(client: TestClient) -> None:
    _assert_error(client.get("/nope"), 404, "Not Found")
    _assert_error(client.get("/predict"), 405, "Method Not Allowed")


def test_operational_endpoints(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "healthy"}
    assert client.get("/ready").json()["status"] == "ready"
    assert client.get("/metadata").json()["version"] == "v2"
    client.post("/predict", json={"features": ROW})
    metrics = client.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert 'abgate_worker_requests_total{endpoint="/predict",model="demo",' in metrics.text
    assert "abgate_worker_predict_duration_seconds_bucket" in metrics.text


def test_metrics_parse_with_prometheus_and_move_with_requests(client: TestClient) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    def scrape() -> tuple[dict[str, str], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
        families = list(text_string_to_metric_families(client.get("/metrics").text))
        values = {
            (s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples
        }
        return {f.name: f.type for f in families}, values

    _, before = scrape()
    for _ in range(3):
        client.post("/predict", json={"features": ROW})
    types, after = scrape()
    assert types["abgate_worker_requests"] == "counter"
    assert types["abgate_worker_predict_duration_seconds"] == "histogram"
    labels = (("model", "demo"), ("version", "v2"))
    ok = ("abgate_worker_requests_total",
          tuple(sorted((*labels, ("endpoint", "/predict"), ("status", "success")))))  # fmt: skip
    assert after[ok] - before.get(ok, 0) == 3
    count = ("abgate_worker_predict_duration_seconds_count",
             tuple(sorted((*labels, ("endpoint", "/predict")))))  # fmt: skip
    assert after[count] - before.get(count, 0) == 3


def test_request_id_is_echoed(client: TestClient) -> None:
    response = client.post("/predict", json={"features": ROW}, headers={"X-Request-ID": "abc-1"})
    assert response.headers["X-Request-ID"] == "abc-1"
    assert response.headers["X-Model-Version"] == "v2"


@pytest.mark.integration
def test_real_worker_answers_the_classic_flask_client(worker_v1: Child) -> None:
    # Unchanged client code written for the classic Flask model API.
    url = worker_v1.url
    result = requests.post(
        url + "/predict", json={"features": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}
    ).json()
    assert isinstance(result["prediction"], int)
    assert len(result["probability"]) == 2
    assert all(isinstance(p, float) for p in result["probability"])
    assert math.isclose(sum(result["probability"]), 1.0, rel_tol=1e-9)
    assert result["status"] == "success"
    assert result["model_version"] == "v1"


@pytest.mark.integration
def test_real_worker_bad_input_is_4xx(worker_v1: Child) -> None:
    response = requests.post(
        worker_v1.url + "/predict", data=b"not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["status"] == "error"
    huge = requests.post(worker_v1.url + "/predict", data=b"x" * (2 * 1024 * 1024))
    assert huge.status_code == 413
