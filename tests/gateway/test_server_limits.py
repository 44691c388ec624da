"""Limits of abgate's own HTTP server against slow, greedy and oversized clients.

Real gateway processes (``abgate gateway --server abgate``) on free ports, raw
sockets, small limits set through ``ABGATE_HTTP_*`` so the tests run fast; every
wait is for a condition with a generous ceiling (the machine is shared), and
the few in-process tests check the same limits' edges with a local server.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from abgate.processes import Child
from abgate.redis_server import free_port
from tests.conftest import port_of, start_gateway, write_config
from tests.gateway.test_server import (
    RawClient,
    Response,
    exchange,
    local_gateway,
    raw_client,
    request_bytes,
    serving,
)
from tests.waiting import wait_for

CEILING_S = 10.0  # slack over a deadline before a test calls the server late (busy machine)


def start_limited(tmp_path: Path, log: IO[str] | None = None, **env: str) -> Child:
    """A gateway routing to a port nothing listens on (no Redis), with ``env`` set."""
    config = write_config(tmp_path / "limits.yaml", {"champion": free_port()}, {"champion": 100})
    return start_gateway(config, None, "--server", "abgate", log=log, **env)


@pytest.fixture
def limited(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Child]:
    with open(tmp_path / "gateway.log", "w", buffering=1) as log:
        child = start_limited(tmp_path, log, **request.param)
        yield child
        child.stop()


def logged(tmp_path: Path, text: str) -> bool:
    return text in (tmp_path / "gateway.log").read_text()


def metric(port: int, line: str) -> float | None:
    """The value of the sample ``line`` (name and labels) in /metrics, if present."""
    with raw_client(port) as client:
        client.send(request_bytes("GET", "/metrics"))
        return sample(client.read().body.decode(), line)


def sample(text: str, line: str) -> float | None:
    """The value of the sample ``line`` (name and labels) in exposition ``text``."""
    found = re.search(rf"^{re.escape(line)} (\S+)$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


def health(port: int) -> int:
    with raw_client(port) as client:
        client.send(request_bytes("GET", "/health"))
        return client.read().status


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` (VmRSS, KiB)."""
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
    assert found is not None
    return int(found.group(1))


# --- slowloris: a head trickling in is cut at its deadline ------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("limited", [{"ABGATE_HTTP_HEAD_TIMEOUT_S": "2"}], indirect=True)
def test_a_slowloris_head_is_cut_at_its_deadline_while_others_are_served(
    limited: Child,
) -> None:
    port = port_of(limited)
    served: list[int] = []
    with raw_client(port) as slow:
        slow.send(b"GET /health HTTP/1.1\r\nHost: test\r\n")
        started = time.monotonic()
        lines = 0
        # One header line every half second (the idle timeout, 5 s, never runs out), until
        # the server answers or closes; the other client is served meanwhile.
        while time.monotonic() - started < 2 + CEILING_S:
            readable, _, _ = select.select([slow.sock], [], [], 0.5)
            if readable:
                break
            slow.send(b"X-Slow-%d: still coming\r\n" % lines)
            lines += 1
            served.append(health(port))
        cut_after = time.monotonic() - started
        assert select.select([slow.sock], [], [], 0)[0], f"still open after {cut_after:.1f}s"
        answer = slow.read()
        assert answer.status == 408 and answer.headers["connection"] == "close"
        assert "request head not received within 2s" in answer.json()["error"]
        assert slow.closed_by_peer()
    assert served and set(served) == {200}
    assert metric(port, 'abgate_http_timeouts_total{kind="head"}') == 1


# --- an unterminated 64 MiB header is refused before it is buffered ---------------------


@pytest.mark.integration
@pytest.mark.parametrize("limited", [{}], indirect=True)
def test_an_unterminated_64_mib_header_is_refused_before_memory_grows(limited: Child) -> None:
    port = port_of(limited)
    assert health(port) == 200
    before = rss_kib(limited.pid)
    chunk = b"x" * (1 << 20)

    def flood(sock: socket.socket) -> None:
        try:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Big: ")
            for _ in range(64):  # 64 MiB, never a line end
                sock.sendall(chunk)
        except OSError:  # refused: the server may close while this still sends
            pass

    with raw_client(port, timeout=30) as client:
        sender = threading.Thread(target=flood, args=(client.sock,), daemon=True)
        sender.start()
        answer = client.read()  # the gateway answers long before the 64 MiB are sent
        assert answer.status in (431, 400)
        assert "request head over the limit of 65536 bytes" in answer.json()["error"]
        assert health(port) == 200  # another connection is served
        grown = rss_kib(limited.pid) - before
        assert client.closed_by_peer()
        sender.join(timeout=30)
        grown = max(grown, rss_kib(limited.pid) - before)  # what was sent on is dropped too
    assert grown < 8 * 1024, f"RSS grew by {grown} KiB"
    assert metric(port, "abgate_http_heads_refused_total") == 1


# --- the connection cap ---------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "limited",
    [{"ABGATE_HTTP_MAX_CONNECTIONS": "3", "ABGATE_HTTP_KEEP_ALIVE_TIMEOUT_S": "120"}],
    indirect=True,
)
def test_connections_past_the_cap_are_answered_503_and_closed(
    limited: Child, tmp_path: Path
) -> None:
    port = port_of(limited)
    clients = [RawClient(port) for _ in range(3)]
    try:
        for client in clients:  # each accepted and served: all three are open
            client.send(request_bytes("GET", "/health"))
            assert client.read().status == 200
        with raw_client(port) as extra:
            extra.send(request_bytes("GET", "/health"))
            answer = extra.read()
            assert answer.status == 503 and answer.headers["connection"] == "close"
            assert answer.json()["error"] == "too many open connections"
            assert extra.closed_by_peer()
        clients[0].send(request_bytes("GET", "/metrics"))
        text = clients[0].read().body.decode()
        assert sample(text, "abgate_http_connections_refused_total") == 1
        assert sample(text, "abgate_http_connections") == 3
        warning = "refused 1 connection(s) with 503: 3 open, ABGATE_HTTP_MAX_CONNECTIONS=3"
        assert wait_for(lambda: logged(tmp_path, warning), timeout=30)
        clients.pop().close()  # a place frees up: new connections are served again
        assert wait_for(lambda: health(port) == 200, timeout=30)
    finally:
        for client in clients:
            client.close()


# --- a client that never reads ----------------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize(
    "limited",
    [{"ABGATE_HTTP_WRITE_TIMEOUT_S": "2", "ABGATE_HTTP_KEEP_ALIVE_TIMEOUT_S": "120"}],
    indirect=True,
)
def test_a_client_that_never_reads_is_dropped_at_the_write_timeout(limited: Child) -> None:
    port = port_of(limited)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills at once
    sock.connect(("127.0.0.1", port))
    sock.settimeout(1)
    batch = request_bytes("GET", "/openapi.json") * 20
    try:
        # Send until the server stops reading (its answers wait on the client) or the
        # connection is already dropped; never read.
        with contextlib.suppress(TimeoutError, ConnectionError):
            for _ in range(100_000):
                sock.sendall(batch)
        assert wait_for(
            lambda: metric(port, 'abgate_http_timeouts_total{kind="write"}') == 1,
            timeout=2 + 6 * CEILING_S,
        )
        with pytest.raises(ConnectionError):  # dropped: reset, not merely slow to read
            sock.send(b"x")
        assert health(port) == 200
    finally:
        sock.close()


# --- in process: the limits' edges ------------------------------------------------------


def test_pipelined_reads_larger_than_the_head_limit_are_no_oversized_head(tmp_path: Path) -> None:
    # 300 small requests in one write arrive in reads far over the 1 KiB head limit.
    async def main() -> list[Response]:
        gateway = local_gateway(tmp_path, http_max_head_bytes=1024)
        async with serving(gateway) as port:
            return await exchange(port, request_bytes("GET", "/health") * 300, count=300)

    answers = asyncio.run(main())
    assert [a.status for a in answers] == [200] * 300


def test_too_many_header_fields_get_431(tmp_path: Path) -> None:
    async def main() -> list[Response]:
        async with serving(local_gateway(tmp_path, http_max_headers=10)) as port:
            fine = request_bytes("GET", "/health", headers={f"X-{i}": "v" for i in range(9)})
            many = request_bytes("GET", "/health", headers={f"X-{i}": "v" for i in range(10)})
            return await exchange(port, fine + many, count=2)

    fine, many = asyncio.run(main())
    assert fine.status == 200
    assert many.status == 431 and many.headers["connection"] == "close"
    assert many.json()["error"] == "header fields over the limit of 10 fields"


def test_a_long_request_target_gets_414(tmp_path: Path) -> None:
    async def main() -> list[Response]:
        async with serving(local_gateway(tmp_path, http_max_head_bytes=2048)) as port:
            return await exchange(port, request_bytes("GET", "/health?" + "q" * 4096))

    [answer] = asyncio.run(main())
    assert answer.status == 414 and answer.headers["connection"] == "close"


def test_a_slow_body_is_cut_at_its_deadline(tmp_path: Path) -> None:
    def slow_body(port: int) -> tuple[Response, bool]:
        with raw_client(port, timeout=30) as client:
            head = b"POST /feedback HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n"
            client.send(head + b"{")  # and nothing more
            return client.read(), client.closed_by_peer()

    async def main() -> tuple[Response, bool]:
        async with serving(local_gateway(tmp_path, http_body_timeout_s=0.5)) as port:
            return await asyncio.to_thread(slow_body, port)

    answer, closed = asyncio.run(main())
    assert answer.status == 408 and closed
    assert answer.json()["error"] == "request body not received within 0.5s"
