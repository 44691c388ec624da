"""The forwarding client against real sockets: keep-alive, timeouts, failures, ejection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import time

import pytest

from abgate.redis_server import free_port
from gateway.upstream import EndpointPool, UpstreamError, VariantEndpoints


class FakeWorkerProtocol(asyncio.Protocol):
    """A real TCP server with scripted behaviour (answer, hang, 500, close)."""

    def __init__(self, server: ScriptedServer) -> None:
        self.server = server
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.server.connections += 1
        self.server.transports.append(transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if len(rest) < length:
                return
            self.buffer = rest[length:]
            self.server.requests += 1
            mode = self.server.mode
            if mode == "hang":
                continue
            if mode == "close":
                self.transport.close()
                return
            status = b"500 Internal Server Error" if mode == "500" else b"200 OK"
            body = b'{"prediction": 1}'
            self.transport.write(
                b"HTTP/1.1 %s\r\nContent-Length: %d\r\nContent-Type: application/json\r\n\r\n%s"
                % (status, len(body), body)
            )


class ScriptedServer:
    def __init__(self) -> None:
        self.mode = "ok"
        self.connections = 0
        self.requests = 0
        self.transports: list[asyncio.BaseTransport] = []
        self.port = free_port()

    async def __aenter__(self) -> ScriptedServer:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: FakeWorkerProtocol(self), "127.0.0.1",
                                               self.port)  # fmt: skip
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()
        for transport in self.transports:
            transport.close()
        await asyncio.sleep(0)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def run(coro):
    return asyncio.run(coro)


def test_keep_alive_reuses_one_connection() -> None:
    async def scenario():
        async with ScriptedServer() as server:
            pool = EndpointPool(server.url)
            for _ in range(50):
                response = await pool.request(b"/predict", b"{}", b"", 1.0)
                assert response.status == 200 and response.body == b'{"prediction": 1}'
            pool.close()
            return server.connections, server.requests

    assert run(scenario()) == (1, 50)


def test_timeout_is_typed_and_bounded() -> None:
    async def scenario():
        async with ScriptedServer() as server:
            server.mode = "hang"
            pool = EndpointPool(server.url)
            started = time.perf_counter()
            with pytest.raises(UpstreamError) as err:
                await pool.request(b"/predict", b"{}", b"", 0.2)
            pool.close()
            return err.value.kind, time.perf_counter() - started

    kind, elapsed = run(scenario())
    assert kind == "timeout"
    assert 0.19 < elapsed < 0.6


def test_each_call_times_out_at_its_own_deadline() -> None:
    """Deadlines are swept, not timed one by one: concurrent calls still end on time."""

    async def scenario():
        async with ScriptedServer() as server:
            server.mode = "hang"
            pool = EndpointPool(server.url)

            async def call(timeout_s: float) -> tuple[str, float]:
                started = time.perf_counter()
                try:
                    await pool.request(b"/predict", b"{}", b"", timeout_s)
                except UpstreamError as exc:
                    return exc.kind, time.perf_counter() - started
                return "answered", 0.0

            results = await asyncio.gather(*(call(t) for t in (0.05, 0.1, 0.3)))
            pool.close()
            return results

    results = run(scenario())
    assert [kind for kind, _ in results] == ["timeout"] * 3
    for (_, elapsed), timeout_s in zip(results, (0.05, 0.1, 0.3), strict=True):
        assert timeout_s - 0.001 < elapsed < timeout_s + 0.25


def test_connect_that_never_completes_times_out() -> None:
    """A host that drops SYNs (full accept queue here) must not hang the call past its timeout."""

    async def scenario():
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):  # fill the accept queue: later SYNs are dropped
                filler = socket.socket()
                filler.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
                fillers.append(filler)
            await asyncio.sleep(0.05)
            pool = EndpointPool(f"http://127.0.0.1:{port}")
            started = time.perf_counter()
            with pytest.raises(UpstreamError) as err:
                await pool.request(b"/predict", b"{}", b"", 0.3)
            return err.value.kind, time.perf_counter() - started
        finally:
            for filler in fillers:
                filler.close()
            listener.close()

    kind, elapsed = run(scenario())
    assert kind == "timeout"
    assert elapsed < 1.0


def test_a_deadline_passing_while_connecting_leaks_no_failed_future(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """On a busy loop the deadline sweep can fail the waiter before the connect gives up."""

    async def slow_connect(self: EndpointPool, loop: object, timeout_s: float) -> None:
        await asyncio.sleep(timeout_s + 0.05)  # the sweep runs first
        raise UpstreamError("timeout", "did not connect in time")

    monkeypatch.setattr(EndpointPool, "_connect", slow_connect)

    async def scenario() -> str:
        with pytest.raises(UpstreamError) as err:
            await EndpointPool("http://127.0.0.1:9").request(b"/predict", b"{}", b"", 0.05)
        return err.value.kind

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        assert run(scenario()) == "timeout"
        gc.collect()
    assert "never retrieved" not in caplog.text


def test_connect_error_and_ejection() -> None:
    async def scenario():
        pool = EndpointPool(f"http://127.0.0.1:{free_port()}", eject_after=3, eject_for_s=30)
        kinds = []
        for _ in range(3):
            with pytest.raises(UpstreamError) as err:
                await pool.request(b"/predict", b"{}", b"", 0.5)
            kinds.append(err.value.kind)
        return kinds, pool.healthy

    kinds, healthy = run(scenario())
    assert kinds == ["connect_error"] * 3
    assert healthy is False


def test_5xx_counts_as_failure_and_round_robin_skips_ejected() -> None:
    async def scenario():
        async with ScriptedServer() as bad, ScriptedServer() as good:
            bad.mode = "500"
            pools = [EndpointPool(bad.url, eject_after=2), EndpointPool(good.url)]
            endpoints = VariantEndpoints(pools)
            statuses = []
            for _ in range(10):
                pool = endpoints.pick()
                statuses.append((await pool.request(b"/predict", b"{}", b"", 1.0)).status)
            for pool in pools:
                pool.close()
            return statuses, bad.requests, good.requests

    statuses, bad_requests, good_requests = run(scenario())
    assert bad_requests == 2  # ejected after two 5xx in a row
    assert good_requests == 8
    assert statuses.count(500) == 2


def test_stale_pooled_connection_is_retried_once() -> None:
    async def scenario():
        async with ScriptedServer() as server:
            pool = EndpointPool(server.url)
            await pool.request(b"/predict", b"{}", b"", 1.0)
            server.mode = "close"  # the worker drops the idle connection on next use
            with pytest.raises(UpstreamError):
                await pool.request(b"/predict", b"{}", b"", 1.0)
            server.mode = "ok"
            response = await pool.request(b"/predict", b"{}", b"", 1.0)
            pool.close()
            return response.status, server.connections

    status, connections = run(scenario())
    assert status == 200
    assert connections >= 2


def test_only_http_urls() -> None:
    with pytest.raises(ValueError):
        EndpointPool("ftp://127.0.0.1:1")
    assert EndpointPool("https://models.internal").port == 443
