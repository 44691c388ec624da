"""abgate's own HTTP server (``gateway/server.py``, ``http_protocol.py``, ``asgi_bridge.py``,
``prefork.py``).

In-process tests drive the ASGI bridge with small admin apps; the integration
tests start the real ``abgate gateway --server abgate`` process and speak raw
HTTP/1.x to it over sockets: keep-alive, pipelining, body limits, bad requests,
the admin routes, SIGTERM while requests are in flight, ``--workers 2``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from abgate.processes import Child, abgate_argv, start_child, wait_http_ok
from abgate.redis_server import free_port
from core.schema import parse_outcome_fields
from core.settings import Settings
from core.store import Store
from experiments.loader import load_experiment
from gateway.app import Gateway, create_app
from gateway.server import Server
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, write_config
from tests.waiting import wait_for

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
BODY = json.dumps({"features": ROW}).encode()
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


# --- raw HTTP over a socket ------------------------------------------------------------


@dataclass
class Response:
    """One HTTP response read off a socket."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request_bytes(
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    version: str = "1.1",
) -> bytes:
    """A request as bytes; Content-Length is added for a body."""
    lines = [f"{method} {path} HTTP/{version}", "Host: test"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def predict_bytes(request_id: str, **headers: str) -> bytes:
    """A predict request with ``request_id``."""
    head = {"Content-Type": "application/json", "X-Request-ID": request_id, **headers}
    return request_bytes("POST", "/predict", BODY, head)


class RawClient:
    """A socket and a buffered reader of the responses on it."""

    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.reader = self.sock.makefile("rb")

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read(self, head_only: bool = False) -> Response:
        """Read one response (Content-Length bodies only, as the server sends)."""
        status_line = self.reader.readline()
        assert status_line.startswith(b"HTTP/1.1 "), status_line
        headers: dict[str, str] = {}
        while (line := self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        length = 0 if head_only else int(headers.get("content-length", "0"))
        body = self.reader.read(length) if length else b""
        return Response(int(status_line.split()[1]), headers, body)

    def closed_by_peer(self) -> bool:
        """Whether the server closed the connection (EOF, or reset)."""
        try:
            return self.reader.read(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


@contextlib.contextmanager
def raw_client(port: int, timeout: float = 10.0) -> Iterator[RawClient]:
    client = RawClient(port, timeout)
    try:
        yield client
    finally:
        client.close()


# --- in process: the ASGI bridge -------------------------------------------------------

ASGIApp = Callable[[dict[str, Any], Any, Any], Any]


def local_gateway(tmp_path: Path, admin: ASGIApp | None = None, **settings: Any) -> Gateway:
    """A gateway without Redis routing to a port nothing listens on; ``admin`` replaced."""
    port = free_port()
    config = write_config(tmp_path / "local.yaml", {"champion": port}, {"champion": 100})
    gateway = create_app(
        Settings(max_body_bytes=1000, **settings), store=None, bootstrap=load_experiment(config)
    )
    if admin is not None:
        gateway.door.admin = admin
    return gateway


@contextlib.asynccontextmanager
async def serving(gateway: Gateway) -> AsyncIterator[int]:
    """Serve ``gateway`` on a free port in this loop; yields the port."""
    server = Server(gateway, asyncio.get_running_loop())
    await server.listen("127.0.0.1", 0, backlog=16, reuse_port=False)
    await gateway.startup()
    await server.start()
    try:
        yield server.port
    finally:
        await server.stop(1.0)
        await gateway.shutdown()


async def exchange(port: int, data: bytes, count: int = 1) -> list[Response]:
    """Send ``data`` on one connection and read ``count`` responses (in a thread)."""

    def talk() -> list[Response]:
        with raw_client(port) as client:
            client.send(data)
            return [client.read(head_only=b"HEAD " in data) for _ in range(count)]

    return await asyncio.to_thread(talk)


def test_bridge_collects_a_streamed_response(tmp_path: Path) -> None:
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.update(scope=scope, message=await receive())
        headers = [(b"content-type", b"text/plain"), (b"x-custom", b"yes")]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"one,", "more_body": True})
        await send({"type": "http.response.body", "body": b"two", "more_body": False})
        seen["after"] = await receive()

    async def main() -> list[Response]:
        async with serving(local_gateway(tmp_path, app)) as port:
            data = request_bytes("PUT", "/admin/x%20y?a=1&b=2", b'{"k": 1}', {"X-Actor": "me"})
            return await exchange(port, data)

    [response] = asyncio.run(main())
    assert (response.status, response.body) == (201, b"one,two")
    assert response.headers["content-length"] == "7" and response.headers["x-custom"] == "yes"
    scope = seen["scope"]
    assert (scope["type"], scope["method"], scope["http_version"]) == ("http", "PUT", "1.1")
    assert (scope["path"], scope["raw_path"]) == ("/admin/x y", b"/admin/x%20y")
    assert scope["query_string"] == b"a=1&b=2" and scope["root_path"] == ""
    assert (b"x-actor", b"me") in scope["headers"]
    assert scope["client"][0] == "127.0.0.1" and scope["server"][0] == "127.0.0.1"
    assert seen["message"] == {"type": "http.request", "body": b'{"k": 1}', "more_body": False}
    assert seen["after"] == {"type": "http.disconnect"}


def test_bridge_failures_answer_500_and_keep_the_connection(tmp_path: Path) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/boom":
            raise RuntimeError("admin bug")
        if scope["path"] == "/silent":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"fine"})

    async def main() -> list[Response]:
        async with serving(local_gateway(tmp_path, app)) as port:
            data = b"".join(request_bytes("GET", p) for p in ("/boom", "/silent", "/ok"))
            return await exchange(port, data, count=3)

    boom, silent, ok = asyncio.run(main())
    assert boom.status == 500 and silent.status == 500
    assert (ok.status, ok.body, ok.headers["content-length"]) == (200, b"fine", "4")


def test_head_through_the_bridge_has_no_body(tmp_path: Path) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
        )
        await send({"type": "http.response.body", "body": b"hello"})

    async def main() -> list[Response]:
        async with serving(local_gateway(tmp_path, app)) as port:
            data = request_bytes("HEAD", "/anything") + request_bytes("GET", "/health")
            return await asyncio.to_thread(read_head_then_get, port, data)

    head, health = asyncio.run(main())
    assert (head.status, head.headers["content-length"], head.body) == (200, "5", b"")
    assert health.json() == {"status": "healthy"}


@pytest.mark.integration
@pytest.mark.parametrize("server", ["abgate", "uvicorn"])
def test_head_of_health_and_ready_answers_like_get_without_a_body(
    tmp_path: Path, server: str
) -> None:
    # The champion's port has no listener: /ready answers 503, HEAD must say the same.
    config = write_config(tmp_path / "head.yaml", {"champion": free_port()}, {"champion": 100})
    child = start_gateway(config, None, "--server", server)
    try:
        with raw_client(port_of(child)) as client:
            for path in ("/health", "/ready", "/metrics"):
                client.send(request_bytes("GET", path))
                got = client.read()
                client.send(request_bytes("HEAD", path))
                head = client.read(head_only=True)
                assert head.status == got.status, path
                assert head.headers["content-type"] == got.headers["content-type"], path
                assert int(head.headers["content-length"]) > 0, path
                if path == "/health":  # the only body that cannot change between the two
                    assert head.headers["content-length"] == str(len(got.body))
            # A body after a HEAD answer would be read here as the next status line.
            client.send(request_bytes("GET", "/health"))
            assert client.read().json() == {"status": "healthy"}
    finally:
        child.stop()


def read_head_then_get(port: int, data: bytes) -> list[Response]:
    with raw_client(port) as client:
        client.send(data)
        return [client.read(head_only=True), client.read()]


def test_local_limits_and_errors(tmp_path: Path) -> None:
    async def main() -> list[Response]:
        async with serving(local_gateway(tmp_path)) as port:
            big = request_bytes("POST", "/predict", b"x" * 5000)
            chunked = (
                b"POST /feedback HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"3\r\n{}\n\r\n0\r\n\r\n"
            )
            data = big + chunked + request_bytes("GET", "/nope")
            return await exchange(port, data, count=3)

    too_large, feedback, missing = asyncio.run(main())
    assert too_large.status == 413
    assert too_large.json() == {
        "status": "error",
        "error": "request body over the limit of 1000 bytes",
    }
    assert feedback.status == 400 and "request_id" in feedback.json()["error"]
    assert missing.status == 404  # the FastAPI admin app's answer


def test_oversized_request_head_is_431(tmp_path: Path) -> None:
    async def main() -> tuple[Response, bool]:
        async with serving(local_gateway(tmp_path)) as port:
            return await asyncio.to_thread(send_huge_header, port)

    answer, closed = asyncio.run(main())
    assert answer.status == 431 and answer.headers["connection"] == "close"
    assert answer.json()["error"] == "request head over the limit of 65536 bytes"
    assert closed


def send_huge_header(port: int) -> tuple[Response, bool]:
    with raw_client(port) as client:
        client.send(request_bytes("GET", "/health", headers={"X-Big": "x" * 70_000}))
        return client.read(), client.closed_by_peer()


def test_idle_connections_are_closed_after_the_keep_alive_timeout(tmp_path: Path) -> None:

    def idle_client(port: int) -> tuple[int, bool, float]:
        with raw_client(port) as client:
            client.send(request_bytes("GET", "/health"))
            status = client.read().status
            started = time.monotonic()
            return status, client.closed_by_peer(), time.monotonic() - started

    async def main() -> tuple[int, bool, float]:
        async with serving(local_gateway(tmp_path, http_keep_alive_timeout_s=0.3)) as port:
            return await asyncio.to_thread(idle_client, port)

    status, closed, waited = asyncio.run(main())
    assert status == 200 and closed and waited < 3


# --- the real process ------------------------------------------------------------------


def start_server(config: Path | None, redis_url: str | None, *extra: str, **env: str) -> Child:
    """``abgate gateway --server abgate`` on a free port, once /health answers."""
    return start_gateway(config, redis_url, "--server", "abgate", *extra, **env)


@pytest.fixture
def gateway(tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]) -> Iterator[Child]:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(tmp_path / "demo.yaml", ports, {"champion": 50, "challenger": 50})
    child = start_server(config, redis_url)
    yield child
    child.stop()


@pytest.mark.integration
def test_keep_alive_serves_many_requests_on_one_socket(gateway: Child) -> None:
    with raw_client(port_of(gateway)) as client:
        for i in range(5):
            client.send(predict_bytes(f"ka-{i}", **{"X-User-ID": f"user-{i}"}))
            answer = client.read()
            assert answer.status == 200, answer.body
            assert answer.headers["x-request-id"] == f"ka-{i}" == answer.json()["request_id"]
            assert answer.headers["x-variant"] == answer.json()["variant"]
            assert answer.headers["content-type"] == "application/json"
            assert "connection" not in answer.headers
        for path in ("/health", "/ready", "/metrics"):
            client.send(request_bytes("GET", path))
            assert client.read().status == 200
        client.send(request_bytes("POST", "/feedback", b'{"request_id": "ka-0", "label": 1}'))
        feedback = client.read()
        assert feedback.status == 200 and feedback.json()["request_id"] == "ka-0"


@pytest.mark.integration
def test_pipelined_requests_are_answered_in_order(gateway: Child) -> None:
    requests_ = [predict_bytes(f"p-{i}") for i in range(6)]
    requests_.insert(2, request_bytes("GET", "/admin/experiments", headers=AUTH))
    requests_.insert(4, request_bytes("GET", "/health"))
    requests_.insert(6, request_bytes("POST", "/v1/demo/predict", BODY, {"X-Request-ID": "v1"}))
    with raw_client(port_of(gateway)) as client:
        client.send(b"".join(requests_))  # one write: the server reads them all at once
        answers = [client.read() for _ in requests_]
    order = [a.headers.get("x-request-id") or a.json().get("status") for a in answers]
    assert order == ["p-0", "p-1", None, "p-2", "healthy", "p-3", "v1", "p-4", "p-5"]
    assert answers[2].json()["experiments"][0]["name"] == "demo"
    assert all(a.status == 200 for a in answers)


@pytest.mark.integration
def test_oversized_bodies_get_413(gateway: Child) -> None:
    response = requests.post(gateway.url + "/predict", data=b"x" * (2 * 1024 * 1024))
    assert response.status_code == 413
    assert response.json() == {
        "status": "error",
        "error": "request body over the limit of 1048576 bytes",
    }
    with raw_client(port_of(gateway)) as client:  # the body is read and dropped: keep-alive
        client.send(request_bytes("POST", "/predict", b"y" * 1_100_000) + predict_bytes("after"))
        assert client.read().status == 413
        assert client.read().headers["x-request-id"] == "after"
    with raw_client(port_of(gateway)) as client:  # Expect: 100-continue, no body ever sent
        client.send(
            b"POST /feedback HTTP/1.1\r\nHost: t\r\nContent-Length: 5000000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        refused = client.read()
        assert refused.status == 413 and refused.headers["connection"] == "close"
        assert client.closed_by_peer()


@pytest.mark.integration
def test_expect_continue_gets_100_then_the_answer(gateway: Child) -> None:
    with raw_client(port_of(gateway)) as client:
        head = (
            b"POST /predict HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
            b"Content-Length: %d\r\n\r\n" % len(BODY)
        )
        client.send(head)
        assert client.reader.readline() == b"HTTP/1.1 100 Continue\r\n"
        assert client.reader.readline() == b"\r\n"
        client.send(BODY)
        assert client.read().status == 200


@pytest.mark.integration
def test_garbage_gets_400_and_a_closed_connection(gateway: Child) -> None:
    with raw_client(port_of(gateway)) as client:
        client.send(b"THIS IS NOT HTTP\r\n\r\n")
        answer = client.read()
        assert answer.status == 400 and answer.json()["status"] == "error"
        assert answer.headers["connection"] == "close"
        assert client.closed_by_peer()
    with raw_client(port_of(gateway)) as client:  # answers owed before the garbage still come
        client.send(predict_bytes("before") + b"GET / HTTP/1.1\r\nBad Header\r\n\r\n")
        assert client.read().headers["x-request-id"] == "before"
        assert client.read().status == 400
        assert client.closed_by_peer()


@pytest.mark.integration
def test_connection_close_and_http_1_0(gateway: Child) -> None:
    with raw_client(port_of(gateway)) as client:
        client.send(predict_bytes("bye", Connection="close") + predict_bytes("never"))
        answer = client.read()
        assert answer.status == 200 and answer.headers["connection"] == "close"
        assert client.closed_by_peer()
    with raw_client(port_of(gateway)) as client:
        client.send(request_bytes("POST", "/predict", BODY, version="1.0"))
        assert client.read().status == 200
        assert client.closed_by_peer()
    with raw_client(port_of(gateway)) as client:
        keep = {"Connection": "keep-alive"}
        for _ in range(2):
            client.send(request_bytes("GET", "/health", headers=keep, version="1.0"))
            answer = client.read()
            assert answer.status == 200 and answer.headers["connection"] == "keep-alive"


@pytest.mark.integration
def test_admin_routes_go_through_the_asgi_bridge(gateway: Child) -> None:
    assert requests.get(gateway.url + "/admin/experiments").status_code == 401
    ok = requests.get(gateway.url + "/admin/experiments", headers=AUTH)
    assert ok.status_code == 200 and ok.json()["experiments"][0]["name"] == "demo"
    url = gateway.url + "/admin/experiments/demo/weights"
    changed = requests.put(url, headers=AUTH, json={"weights": {"champion": 100, "challenger": 0}})
    assert changed.status_code == 200, changed.text
    bad = requests.put(url, headers=AUTH, data=b"{not json", params={"x": "1"})
    assert bad.status_code == 422
    spec = requests.get(gateway.url + "/openapi.json")
    assert spec.status_code == 200 and "/predict" in spec.json()["paths"]
    docs = requests.get(gateway.url + "/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    assert requests.get(gateway.url + "/predict").status_code == 405  # FastAPI's answer


class _Listener(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # the default 5 drops SYNs of concurrent connects (1 s retry)


class SlowWorker:
    """A model worker that answers /predict after ``delay_s``, counting what arrived."""

    def __init__(self, delay_s: float) -> None:
        self.arrived = 0
        self.lock = threading.Lock()
        worker = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # http.server's naming
                self.rfile.read(int(self.headers["Content-Length"]))
                with worker.lock:
                    worker.arrived += 1
                time.sleep(delay_s)
                body = b'{"prediction": 1, "probability": [0.4, 0.6], "status": "success"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = _Listener(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def slow_worker() -> Iterator[SlowWorker]:
    worker = SlowWorker(delay_s=1.0)
    yield worker
    worker.close()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # Reset: the listening socket closed while this connect sat in its backlog.
        return True
    return False


@pytest.mark.integration
def test_sigterm_answers_requests_in_flight_then_exits_0(
    tmp_path: Path, redis_url: str, slow_worker: SlowWorker
) -> None:
    config = write_config(
        tmp_path / "slow.yaml", {"champion": slow_worker.port}, {"champion": 100}, timeout_ms="5000"
    )
    # No periodic flush during the test: what reaches Redis is the flush at shutdown.
    gateway = start_server(config, redis_url, ABGATE_FLUSH_INTERVAL_S="60")
    port = port_of(gateway)
    clients: list[RawClient] = []
    try:
        idle = RawClient(port)
        clients.append(idle)
        idle.send(request_bytes("GET", "/health"))
        assert idle.read().status == 200
        for i in range(12):
            clients.append(RawClient(port))
            clients[-1].send(predict_bytes(f"inflight-{i}"))
        assert wait_for(lambda: slow_worker.arrived == 12)
        os.kill(gateway.pid, signal.SIGTERM)
        assert wait_for(lambda: refused(port)), "still accepting after SIGTERM"
        assert gateway.alive(), "exited before answering the requests in flight"
        assert idle.closed_by_peer()  # idle keep-alive connections are closed at once
        for i, client in enumerate(clients[1:]):
            answer = client.read()
            assert answer.status == 200 and answer.headers["x-request-id"] == f"inflight-{i}"
            assert answer.headers["connection"] == "close"
        assert gateway.process.wait(timeout=15) == 0
    finally:
        for client in clients:
            client.close()
        gateway.stop()
    totals = parse_outcome_fields(Store(redis_url).totals("demo"))
    assert sum(v.requests for v in totals.values()) == 12  # flushed at shutdown


@pytest.mark.integration
def test_sigterm_answers_a_connection_accepted_just_before_whose_request_comes_after(
    gateway: Child,
) -> None:
    # A client that connected a moment before SIGTERM and sends its request a moment
    # after: closed as idle, it would see end-of-file and not know if it was served.
    port = port_of(gateway)
    with raw_client(port) as fresh:
        with raw_client(port) as probe:  # the kernel hands connections out in order:
            probe.send(request_bytes("GET", "/health"))  # once this one is served,
            assert probe.read().status == 200  # `fresh` was accepted too
        os.kill(gateway.pid, signal.SIGTERM)
        assert wait_for(lambda: refused(port)), "still accepting after SIGTERM"
        fresh.send(predict_bytes("late-1"))
        answer = fresh.read()
        assert answer.status == 200 and answer.headers["x-request-id"] == "late-1"
        assert answer.headers["connection"] == "close"
    assert gateway.process.wait(timeout=15) == 0


def child_pids(pid: int) -> list[int]:
    """Pids of the live children of ``pid`` (from /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(stat.parent.name))
    return found


def start_two_processes(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> tuple[Child, list[int]]:
    """A ``--workers 2`` gateway and the pids of its two server processes."""
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(tmp_path / "w.yaml", ports, {"champion": 100})
    gateway = start_server(config, redis_url, "--workers", "2")
    children = wait_for(lambda: len(child_pids(gateway.pid)) == 2 and child_pids(gateway.pid))
    if not children:
        gateway.stop()
        raise AssertionError("expected two server processes")
    return gateway, children


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_workers_fork_processes_that_share_the_port(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    gateway, children = start_two_processes(tmp_path, redis_url, demo_workers)
    try:
        for i in range(40):  # new connections: the kernel spreads them over both processes
            answer = requests.post(
                gateway.url + "/predict", json={"features": ROW}, headers={"X-Request-ID": f"w-{i}"}
            )
            assert answer.status_code == 200 and answer.json()["request_id"] == f"w-{i}"
        os.kill(gateway.pid, signal.SIGTERM)
        assert gateway.process.wait(timeout=20) == 0
        assert not any(Path(f"/proc/{pid}").exists() for pid in children)
    finally:
        gateway.stop()


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT")
def test_server_processes_stop_when_their_supervisor_is_killed(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    gateway, children = start_two_processes(tmp_path, redis_url, demo_workers)
    try:
        os.kill(gateway.pid, signal.SIGKILL)  # OOM killer, kill -9: no chance to stop them
        gateway.process.wait(timeout=10)
        gone = wait_for(
            lambda: not any(Path(f"/proc/{pid}").exists() for pid in children), timeout=60
        )
        assert gone, "server processes outlived their supervisor"
        assert refused(port_of(gateway))
    finally:
        gateway.stop()


@pytest.mark.integration
def test_uvicorn_stays_selectable(tmp_path: Path, demo_workers: dict[str, Child]) -> None:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(tmp_path / "u.yaml", ports, {"champion": 100})
    port = free_port()
    child = start_child(
        "gateway",
        abgate_argv("gateway", "--server", "uvicorn", "--port", str(port), "--config", str(config)),
        url=f"http://127.0.0.1:{port}",
        env={"ABGATE_LOG_LEVEL": "warning"},
    )
    try:
        wait_http_ok(f"{child.url}/health", child=child, timeout=60)
        answer = requests.post(child.url + "/predict", json={"features": ROW})
        assert answer.status_code == 200 and answer.json()["variant"] == "champion"
    finally:
        child.stop()


_STUBBORN = """
import logging, os, signal, sys, time
from gateway.prefork import Supervisor
logging.basicConfig(level=logging.INFO)

def target():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a server process stuck in its shutdown
    with open(os.path.join(sys.argv[1], str(os.getpid())), "w"):
        pass
    while True:
        time.sleep(1)

sys.exit(Supervisor(target, 2, kill_after=float(sys.argv[2])).run())
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_server_process_stuck_in_its_shutdown_is_killed(tmp_path: Path) -> None:
    supervisor = subprocess.Popen(
        [sys.executable, "-c", _STUBBORN, str(tmp_path), "1.0"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert wait_for(lambda: len(list(tmp_path.iterdir())) == 2, timeout=30)
        children = [int(path.name) for path in tmp_path.iterdir()]
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=30) == 1  # not 0: a process had to be killed
        assert not any(Path(f"/proc/{pid}").exists() for pid in children)
        assert "still running 1s after SIGTERM: killing" in supervisor.stderr.read()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        supervisor.stderr.close()
