"""Bad input at a real gateway: always a 4xx with a message, never a 5xx, nothing counted twice.

Complements ``test_gateway_process.py`` (malformed JSON, non-object bodies, a
missing field, strings, NaN, a wrong feature count, a 2 MiB body, a 200-character
request id, unknown and repeated feedback) with the cases it did not cover.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from abgate.processes import Child
from abgate.redis_server import EmbeddedRedis
from core.schema import parse_outcome_fields
from core.store import Store
from tests.conftest import port_of, start_gateway, write_config

pytestmark = pytest.mark.integration

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
TEN_MB = 10 * 1024 * 1024


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    redis_server: EmbeddedRedis,
    demo_workers: dict[str, Child],
) -> Iterator[Child]:
    config: Path = write_config(
        tmp_path_factory.mktemp("bad") / "bad.yaml",
        {"champion": port_of(demo_workers["champion"])},
        {"champion": 100},
        name="badinput",
    )
    child = start_gateway(config, redis_server.url)
    yield child
    child.stop()


def assert_error(response: requests.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and fragment in body["error"], body


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b'{"features": [Infinity, 1, 1, 1, 1, 1, 1, 1, 1, 1]}', "malformed JSON"),
        (b'{"features": [-Infinity, 1, 1, 1, 1, 1, 1, 1, 1, 1]}', "malformed JSON"),
        (b'{"features": [1e400, 1, 1, 1, 1, 1, 1, 1, 1, 1]}', "malformed JSON"),
        (b'{"features": [true, 1, 1, 1, 1, 1, 1, 1, 1, 1]}', "finite numbers"),
        (b'{"features": [null, 1, 1, 1, 1, 1, 1, 1, 1, 1]}', "finite numbers"),
        (b'{"features": [[1], 1, 1, 1, 1, 1, 1, 1, 1, 1]}', "finite numbers"),
        (b'{"features": "0.1,0.2"}', "finite numbers"),
        (b'{"features": {"a": 1}}', "finite numbers"),
        (b'{"features": []}', "finite numbers"),
        (b'{"features": null}', "features: field required"),
        (b'"features"', "JSON object"),
        (b"", "malformed JSON"),
        (b"\xff\xfe{}", "malformed JSON"),
        (b'{"features": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], "features": "x"}', "finite numbers"),
        (b'{"features": [' + b"1," * 200_000 + b"1]}", "expected 10 features"),
    ],
)
def test_wrong_types_and_non_finite_numbers_are_4xx(
    gateway: Child, data: bytes, fragment: str
) -> None:
    answer = requests.post(gateway.url + "/predict", data=data,
                           headers={"Content-Type": "application/json"}, timeout=30)  # fmt: skip
    assert_error(answer, 400, fragment)


def test_ten_megabyte_body_is_413_declared_or_streamed(gateway: Child) -> None:
    body = b'{"features": [' + b"1," * (TEN_MB // 2) + b"1]}"
    declared = requests.post(gateway.url + "/predict", data=body, timeout=30)
    assert_error(declared, 413, "over the limit")
    chunks = [body[i : i + 65536] for i in range(0, len(body), 65536)]
    streamed = requests.post(gateway.url + "/predict", data=iter(chunks), timeout=30)
    assert_error(streamed, 413, "over the limit")
    assert requests.post(gateway.url + "/predict", json={"features": ROW}, timeout=10).ok


@pytest.mark.parametrize(
    "request_id",
    ["ü-umlaut", "日本語", "emoji-🙂", "a" * 129, "a b", "a/b", "a%0d%0aX-Evil: 1", "<script>"],
)
def test_unsafe_request_ids_are_refused(gateway: Child, request_id: str) -> None:
    raw = request_id.encode()  # sent as UTF-8 bytes, as a client would
    answer = raw_predict(port_of(gateway), [b"X-Request-ID: " + raw])
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"X-Request-ID must be" in answer
    assert raw not in answer.partition(b"\r\n\r\n")[0]  # never echoed into a header


def test_longest_allowed_request_id_is_echoed(gateway: Child) -> None:
    rid = "r" * 128
    answer = requests.post(gateway.url + "/predict", json={"features": ROW},
                           headers={"X-Request-ID": rid}, timeout=10)  # fmt: skip
    assert answer.status_code == 200 and answer.headers["X-Request-ID"] == rid


def raw_predict(port: int, header_lines: list[bytes]) -> bytes:
    body = b'{"features": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}'
    head = [b"POST /predict HTTP/1.1", b"Host: test", b"Content-Type: application/json",
            b"Content-Length: %d" % len(body), b"Connection: close", *header_lines]  # fmt: skip
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n" + body)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_header_injection_in_request_id_never_reaches_the_response(gateway: Child) -> None:
    # A bare CR or LF inside a header value is a protocol error; the server
    # answers 400 and closes, so nothing of it is reflected.
    for value in (b"abc\rX-Evil: 1", b"abc\x00def", b"abc\x7fdef"):
        answer = raw_predict(port_of(gateway), [b"X-Request-ID: " + value])
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"x-evil" not in answer.lower()
    # A folded (obs-fold) continuation line must not smuggle a header either.
    answer = raw_predict(port_of(gateway), [b"X-Request-ID: abc", b" X-Evil: 1"])
    assert b"x-evil" not in answer.lower()
    assert answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 200")), answer[:200]


def test_feedback_twice_is_counted_once(gateway: Child, redis_server: EmbeddedRedis) -> None:
    def accuracy_n() -> float:
        totals = parse_outcome_fields(Store(redis_server.url).totals("badinput"))
        return sum((m.n if (m := v.metrics.get("accuracy")) else 0) for v in totals.values())

    served = requests.post(gateway.url + "/predict", json={"features": ROW}, timeout=10).json()
    before = accuracy_n()
    rid = served["request_id"]
    first = requests.post(gateway.url + "/feedback", json={"request_id": rid, "label": 1})
    assert first.status_code == 200, first.text
    for _ in range(3):
        again = requests.post(gateway.url + "/feedback", json={"request_id": rid, "label": 0})
        assert_error(again, 409, "already counted")
    deadline = time.monotonic() + 10
    while accuracy_n() < before + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # several flush intervals: a second count would have landed
    assert accuracy_n() == before + 1


@pytest.mark.parametrize(
    ("payload", "status", "fragment"),
    [
        ({"request_id": "x", "label": 1, "experiment": "nope"}, 404, "not routed here"),
        ({"request_id": "x" * 129, "label": 1}, 400, "request_id"),
        ({"request_id": 12, "label": 1}, 400, "request_id"),
        ({"request_id": "x"}, 400, "exactly one of"),
        ({"request_id": "x", "label": "1"}, 400, "must be a number"),
        ({"request_id": "x", "label": True}, 400, "must be a number"),
        ({"request_id": "x", "reward": None}, 400, "must be a number"),
    ],
)
def test_bad_feedback_is_4xx(gateway: Child, payload: dict, status: int, fragment: str) -> None:
    answer = requests.post(gateway.url + "/feedback", json=payload, timeout=10)
    assert_error(answer, status, fragment)
