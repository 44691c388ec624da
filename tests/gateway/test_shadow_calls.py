"""Shadow calls made by a child process (``gateway/shadow_calls.py``, ``shadow_caller.py``).

The wire format is checked on frames cut at every byte; the parent's client against a
real child and a real HTTP server (an answer, a status, a timeout, a child killed
mid-call and started again, a close that ends the child); and a real gateway: its
shadow calls go through exactly one child, answered and counted in Redis, and the
child ends with the gateway, even when the gateway is killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from abgate.processes import Child
from core.schema import ShadowStats, decode_stats
from core.store import Store
from gateway.shadow_calls import (
    ANSWER,
    ANSWER_GRACE_S,
    CALL,
    DRAIN_S,
    RESTART_AFTER_S,
    Frames,
    InlineShadowCalls,
    ShadowCall,
    ShadowProcess,
    encode_answer,
    encode_call,
)
from gateway.upstream import EndpointPool, UpstreamError, UpstreamResponse
from tests.conftest import port_of, start_gateway, write_config
from tests.waiting import wait_for


def test_frames_cut_at_any_byte_come_back_whole() -> None:
    first, second = EndpointPool("http://a:1"), EndpointPool("http://b:2/base")
    sent = [
        encode_call(7, ShadowCall(first, b"/predict", b'{"features": [1]}', b"X-A: b\r\n", 0.5)),
        encode_answer(7, 200, b'{"prediction": 1}'),
        encode_answer(8, -2, b"timed out"),
        encode_call(9, ShadowCall(second, b"/v2/models/m/ready", b"", b"", 1.0, b"GET", b"x/y")),
    ]
    stream = b"".join(sent)
    for cut in range(1, len(stream)):
        frames = Frames()
        got = frames.feed(stream[:cut]) + frames.feed(stream[cut:])
        assert [len(f) + 4 for f in got] == [len(s) for s in sent]
        assert got == [s[4:] for s in sent]
    call = CALL.unpack_from(Frames().feed(sent[0])[0])
    assert call[0] == 7 and call[1] == 0.5 and call[2] == 0
    assert ANSWER.unpack_from(Frames().feed(sent[2])[0]) == (8, -2)


class _Upstream:
    """Answers POST with the status and delay the path asks for: ``/<status>/<delay_ms>``."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                got = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, delay_ms = (int(p) for p in self.path.strip("/").split("/"))
                time.sleep(delay_ms / 1000)
                body = b'{"echo": %s, "extra": "%s"}' % (
                    got,
                    self.headers.get("X-Extra", "").encode(),
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # 40 calls connect at once (the default backlog is 5)

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a caller that timed out has gone: its answer has nowhere to go

        self.server = Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    yield server
    server.close()


async def _ask(
    calls: ShadowProcess,
    pool: EndpointPool,
    path: bytes,
    body: bytes,
    headers: bytes,
    timeout_s: float,
) -> UpstreamResponse:
    """One call through the child, awaited: its answer, or its UpstreamError raised."""
    answered: asyncio.Future[UpstreamResponse | UpstreamError] = (
        asyncio.get_running_loop().create_future()
    )
    calls.call(ShadowCall(pool, path, body, headers, timeout_s), answered.set_result)
    result = await answered
    if isinstance(result, UpstreamError):
        raise result
    return result


def test_the_child_makes_the_calls_and_ends_with_its_socket(upstream: _Upstream) -> None:
    async def scenario() -> None:
        calls = ShadowProcess()
        pool = EndpointPool(upstream.url)
        try:
            ok = await _ask(calls, pool, b"/200/0", b"[1, 2]", b"X-Extra: yes\r\n", 5.0)
            assert ok.status == 200 and ok.body == b'{"echo": [1, 2], "extra": "yes"}'
            assert calls.process is not None and calls.process.pid != os.getpid()
            first = calls.process.pid
            bad = await _ask(calls, pool, b"/503/0", b"{}", b"", 5.0)
            assert bad.status == 503
            with pytest.raises(UpstreamError) as timed_out:
                await _ask(calls, pool, b"/200/3000", b"{}", b"", 0.2)
            assert timed_out.value.kind == "timeout"
            # Many at once: each answer goes to its own caller.
            answers = await asyncio.gather(*(
                _ask(calls, pool, b"/200/%d" % (i % 3 * 20), b"%d" % i, b"", 5.0)
                for i in range(40)
            ))  # fmt: skip
            assert [a.body for a in answers] == [
                b'{"echo": %d, "extra": ""}' % i for i in range(40)
            ]
            # The child killed with a call in flight: that call fails, the next one
            # (a second later at the soonest) goes through a new child.
            pending = asyncio.ensure_future(_ask(calls, pool, b"/200/2000", b"{}", b"", 5.0))
            await asyncio.sleep(0.2)
            os.kill(first, signal.SIGKILL)
            with pytest.raises(UpstreamError) as lost:
                await pending
            assert lost.value.kind == "connect_error"
            await asyncio.sleep(RESTART_AFTER_S)
            again = await _ask(calls, pool, b"/200/0", b"3", b"", 5.0)
            assert again.status == 200 and calls.starts == 2
            assert calls.process is not None and calls.process.pid != first
            child = calls.process
        finally:
            await calls.close()
        assert child.poll() is not None, "the shadow caller outlived its socket"

    asyncio.run(scenario())


def test_a_stuck_child_cannot_hold_a_call_past_its_deadline(upstream: _Upstream) -> None:
    async def scenario() -> None:
        calls = ShadowProcess()
        pool = EndpointPool(upstream.url)
        try:
            assert (await _ask(calls, pool, b"/200/0", b"1", b"", 5.0)).status == 200
            assert calls.process is not None
            child = calls.process.pid
            os.kill(child, signal.SIGSTOP)  # alive, but answering nothing
            try:
                started = time.monotonic()
                with pytest.raises(UpstreamError) as stuck:
                    await _ask(calls, pool, b"/200/0", b"2", b"", 0.3)
                assert stuck.value.kind == "timeout"
                assert time.monotonic() - started >= 0.3 + ANSWER_GRACE_S
                assert calls.waiting == {}
            finally:
                os.kill(child, signal.SIGCONT)
            # The same child answers again once it runs.
            assert (await _ask(calls, pool, b"/200/0", b"3", b"", 5.0)).status == 200
            assert calls.starts == 1
        finally:
            await calls.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("kind", ["process", "inline"])
def test_a_closing_caller_lets_the_calls_made_finish(upstream: _Upstream, kind: str) -> None:
    """A gateway that stops records its last requests' shadows: not errors."""

    async def scenario() -> None:
        calls = ShadowProcess() if kind == "process" else InlineShadowCalls()
        pool = EndpointPool(upstream.url)
        got: list[UpstreamResponse | UpstreamError] = []
        for i in range(3):
            calls.call(ShadowCall(pool, b"/200/300", b"%d" % i, b"", 5.0), got.append)
        started = time.monotonic()
        await calls.close()
        pool.close()
        assert [getattr(r, "status", r) for r in got] == [200, 200, 200]
        assert time.monotonic() - started < DRAIN_S
        # Closed: a call made now fails at once (process) or is never made.
        if kind == "process":
            calls.call(ShadowCall(pool, b"/200/0", b"4", b"", 5.0), got.append)
            assert isinstance(got[-1], UpstreamError)

    asyncio.run(scenario())


def test_a_closing_caller_gives_up_on_calls_slower_than_its_drain(upstream: _Upstream) -> None:
    async def scenario() -> None:
        calls = ShadowProcess()
        pool = EndpointPool(upstream.url)
        got: list[UpstreamResponse | UpstreamError] = []
        slow = b"/200/%d" % int((DRAIN_S + 3) * 1000)
        calls.call(ShadowCall(pool, slow, b"1", b"", DRAIN_S + 5), got.append)
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await calls.close()
        assert DRAIN_S <= time.monotonic() - started < DRAIN_S + 3
        assert len(got) == 1 and isinstance(got[0], UpstreamError)
        assert calls.waiting == {}

    asyncio.run(scenario())


def _callers(gateway: Child) -> list[psutil.Process]:
    return [
        p
        for p in psutil.Process(gateway.pid).children(recursive=True)
        if "gateway.shadow_caller" in " ".join(p.cmdline())
    ]


def _shadow(redis_url: str) -> ShadowStats:
    return decode_stats(Store(redis_url).totals("demo")).shadows.get("shadow-v2", ShadowStats())


def _config(tmp_path: Path, demo_workers: dict[str, Child]) -> Path:
    tail = "\n".join([
        "shadows:",
        "  - name: shadow-v2",
        "    model_version: v2",
        f"    endpoints: ['{demo_workers['challenger'].url}']",
        "    timeout_ms: 30000",
    ])  # fmt: skip
    return write_config(
        tmp_path / "demo.yaml", {"champion": port_of(demo_workers["champion"])},
        {"champion": 100}, tail=tail,
    )  # fmt: skip


@pytest.mark.integration
@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_a_gateways_shadow_calls_go_through_one_child_that_ends_with_it(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child], stop: int
) -> None:
    gateway = start_gateway(_config(tmp_path, demo_workers), redis_url)
    callers: list[psutil.Process] = []
    try:
        # Started with the config that has a shadow, before any call: its first calls
        # do not wait (nor are shed) while it starts.
        assert len(wait_for(lambda: _callers(gateway), "the shadow caller started")) == 1
        for i in range(30):
            answer = requests.post(
                f"{gateway.url}/predict", json={"features": [0.1] * 10},
                headers={"X-User-ID": f"u{i}"}, timeout=30,
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
        stats = wait_for(lambda: s if (s := _shadow(redis_url)).requests >= 30 else None)
        assert (stats.requests, stats.errors, stats.shed) == (30, 0, 0)
        callers = _callers(gateway)
        assert len(callers) == 1
    finally:
        gateway.stop(sig=stop)
    _, alive = psutil.wait_procs(callers, timeout=30)
    assert alive == [], f"shadow caller {[p.pid for p in alive]} outlived its gateway"


@pytest.mark.integration
def test_a_gateway_without_shadows_starts_no_caller(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    config = write_config(
        tmp_path / "plain.yaml", {"champion": port_of(demo_workers["champion"])},
        {"champion": 100},
    )  # fmt: skip
    gateway = start_gateway(config, redis_url)
    try:
        answer = requests.post(f"{gateway.url}/predict", json={"features": [0.3] * 10},
                               timeout=30)  # fmt: skip
        assert answer.status_code == 200, answer.text
        assert _callers(gateway) == []
    finally:
        gateway.stop()


@pytest.mark.integration
def test_inline_shadow_calls_start_no_child(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    gateway = start_gateway(
        _config(tmp_path, demo_workers), redis_url, ABGATE_SHADOW_CALLS="inline"
    )
    try:
        for i in range(10):
            answer = requests.post(
                f"{gateway.url}/predict", json={"features": [0.2] * 10},
                headers={"X-User-ID": f"u{i}"}, timeout=30,
            )  # fmt: skip
            assert answer.status_code == 200, answer.text
        stats = wait_for(lambda: s if (s := _shadow(redis_url)).requests >= 10 else None)
        assert (stats.requests, stats.errors) == (10, 0)
        assert _callers(gateway) == []
    finally:
        gateway.stop()
