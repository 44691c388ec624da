"""Where a gateway's shadow calls are made: in a process of their own, or inline.

Mirroring every request to a shadow is a second upstream call per request:
connect or reuse, write, wake for the answer 50 ms later, parse it, sweep its
deadline. Made in the serving process, that work shares the CPU the live
requests need, and the live p50 rose by ~14 % at 100 % mirroring
(``python -m bench.shadow_mirroring``). So by default a gateway process hands
each shadow call to a *shadow caller*, a child process it starts on the first
call (``python -m gateway.shadow_caller``): one ``write`` on a Unix socket out,
and the answer back on the same socket, many per wake-up. The child holds the
shadow connections, their deadlines and retries (``EndpointPool``); the
serving process keeps everything else as before — which shadow is mirrored,
the ``max_inflight`` shedding, scoring, recording, the access log.

The child lives as long as the socket: it exits when its parent closes it or
dies. If the child dies, its calls in flight fail as ``connect_error`` (so the
shadow counts them as failed) and the next call starts a new one, at most once
a second.

Wire format, both ways a frame ``<u32 length><payload>``:
  call   ``<u32 id><f64 timeout_s><u8 method><u16 url><u16 path><u16 type><u32 headers>``
         then url, path, content type, extra header lines, body;
  answer ``<u32 id><i16 status>`` then the body (status < 0: an ``UpstreamError``
         whose kind is ``ERROR_KINDS[-status - 1]`` and whose message is the body).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol

from gateway.upstream import EndpointPool, UpstreamError, UpstreamResponse

__all__ = ["InlineShadowCalls", "ShadowCalls", "ShadowProcess", "shadow_calls"]

log = logging.getLogger("abgate.shadows")

FRAME = struct.Struct("!I")
CALL = struct.Struct("!IdBHHHI")
ANSWER = struct.Struct("!Ih")
ERROR_KINDS = ("connect_error", "timeout", "protocol")
METHODS = (b"POST", b"GET")
RESTART_AFTER_S = 1.0  # a child that died is started again at most this often


class ShadowCalls(Protocol):
    """Makes one shadow call: ``EndpointPool.request``'s contract, wherever it runs."""

    async def request(
        self,
        pool: EndpointPool,
        path: bytes,
        body: bytes,
        headers: bytes,
        timeout_s: float,
        method: bytes = b"POST",
        content_type: bytes = b"application/json",
    ) -> UpstreamResponse:
        """The shadow's answer, or ``UpstreamError``."""
        ...

    async def close(self) -> None:
        """Stop making calls (the child process, if any, exits)."""
        ...


class InlineShadowCalls:
    """Shadow calls made in the serving process, on its own pools."""

    async def request(
        self,
        pool: EndpointPool,
        path: bytes,
        body: bytes,
        headers: bytes,
        timeout_s: float,
        method: bytes = b"POST",
        content_type: bytes = b"application/json",
    ) -> UpstreamResponse:
        """Call ``pool`` from this process."""
        return await pool.request(path, body, headers, timeout_s, method, content_type)

    async def close(self) -> None:
        """Nothing to stop: the pools close with the gateway's."""


def encode_call(
    call_id: int,
    url: bytes,
    path: bytes,
    body: bytes,
    headers: bytes,
    timeout_s: float,
    method: bytes,
    content_type: bytes,
) -> bytes:
    """One call as a frame."""
    head = CALL.pack(
        call_id, timeout_s, METHODS.index(method), len(url), len(path), len(content_type),
        len(headers),
    )  # fmt: skip
    size = len(head) + len(url) + len(path) + len(content_type) + len(headers) + len(body)
    return b"".join((FRAME.pack(size), head, url, path, content_type, headers, body))


def encode_answer(call_id: int, status: int, body: bytes) -> bytes:
    """One answer (or, at a negative status, one failure) as a frame."""
    return b"".join((FRAME.pack(ANSWER.size + len(body)), ANSWER.pack(call_id, status), body))


class Frames:
    """Splits a byte stream into frames."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """The frames completed by ``data``, without their length prefix."""
        buffer = self._buffer
        buffer += data
        frames: list[bytes] = []
        start, end = 0, len(buffer)
        while end - start >= FRAME.size:
            (size,) = FRAME.unpack_from(buffer, start)
            begin = start + FRAME.size
            if end - begin < size:
                break
            frames.append(bytes(buffer[begin : begin + size]))
            start = begin + size
        del buffer[:start]
        return frames


class _Answers(asyncio.Protocol):
    """The parent's end of the socket: resolves each call's future with its answer."""

    def __init__(self, owner: ShadowProcess) -> None:
        self.owner = owner
        self.frames = Frames()

    def data_received(self, data: bytes) -> None:
        waiting = self.owner.waiting
        for frame in self.frames.feed(data):
            call_id, status = ANSWER.unpack_from(frame)
            waiter = waiting.pop(call_id, None)
            if waiter is None or waiter.done():
                continue
            body = frame[ANSWER.size :]
            if status < 0:
                waiter.set_exception(UpstreamError(ERROR_KINDS[-status - 1], body.decode()))
            else:
                waiter.set_result(UpstreamResponse(status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost()


@dataclass
class ShadowProcess:
    """Shadow calls made by a child process this one starts on the first call."""

    process: subprocess.Popen[bytes] | None = None
    transport: asyncio.Transport | None = None
    waiting: dict[int, asyncio.Future[UpstreamResponse]] = field(default_factory=dict)
    started: float = 0.0
    starts: int = 0
    _next_id: int = 0
    _starting: asyncio.Future[None] | None = None
    _closed: bool = False

    async def request(
        self,
        pool: EndpointPool,
        path: bytes,
        body: bytes,
        headers: bytes,
        timeout_s: float,
        method: bytes = b"POST",
        content_type: bytes = b"application/json",
    ) -> UpstreamResponse:
        """Hand the call to the child and wait for its answer."""
        transport = self.transport
        if transport is None or transport.is_closing():
            transport = await self._start()
        loop = asyncio.get_running_loop()
        self._next_id = call_id = (self._next_id + 1) & 0xFFFFFFFF
        waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
        self.waiting[call_id] = waiter
        transport.write(
            encode_call(
                call_id, pool.url.encode(), path, body, headers, timeout_s, method, content_type
            )
        )
        try:
            response = await waiter
        except UpstreamError as exc:
            pool.note(ok=False)
            raise exc from None
        finally:
            self.waiting.pop(call_id, None)
        pool.note(ok=response.status < 500)
        return response

    async def _start(self) -> asyncio.Transport:
        if self._closed:
            raise UpstreamError("connect_error", "the gateway is stopping")
        if self._starting is not None:
            await asyncio.shield(self._starting)
            if self.transport is None:
                raise UpstreamError("connect_error", "the shadow caller process did not start")
            return self.transport
        if time.monotonic() - self.started < RESTART_AFTER_S:
            raise UpstreamError("connect_error", "the shadow caller process exited a moment ago")
        loop = asyncio.get_running_loop()
        self._starting = loop.create_future()
        self.started = time.monotonic()
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            with theirs:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "gateway.shadow_caller", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                )  # fmt: skip
            transport, _ = await loop.create_unix_connection(lambda: _Answers(self), sock=ours)
            self.transport = transport  # type: ignore[assignment]
            self.starts += 1
            log.info("shadow calls go through process %d", self.process.pid)
        except OSError as exc:
            log.error("cannot start the shadow caller process: %s", exc)
            raise UpstreamError("connect_error", f"no shadow caller process: {exc}") from exc
        finally:
            self._starting.set_result(None)
            self._starting = None
        assert self.transport is not None
        return self.transport

    def lost(self) -> None:
        """The socket closed: the child exited (or is being stopped)."""
        self.transport = None
        if self.waiting and not self._closed:
            log.warning(
                "the shadow caller process exited with %d calls in flight", len(self.waiting)
            )
        waiting, self.waiting = self.waiting, {}
        for waiter in waiting.values():
            if not waiter.done():
                waiter.set_exception(
                    UpstreamError("connect_error", "the shadow caller process exited")
                )
        process = self.process
        if process is not None and process.poll() is None and self._closed:
            return
        if process is not None:
            process.poll()  # reaped, if it has exited

    async def close(self) -> None:
        """Close the socket; the child finishes nothing more and exits."""
        self._closed = True
        if self.transport is not None:
            self.transport.close()
        process = self.process
        if process is None:
            return
        deadline = time.monotonic() + 2.0
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if process.poll() is None:
            process.kill()
            process.wait()


def shadow_calls(in_process: bool) -> ShadowCalls:
    """The shadow calls a gateway process makes: inline, or through a child."""
    return InlineShadowCalls() if in_process else ShadowProcess()
