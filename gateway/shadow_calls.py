"""Where a gateway's shadow calls are made: in a process of their own, or inline.

Mirroring every request to a shadow is a second upstream call per request:
connect or reuse, write, wake for the answer 50 ms later, parse it, sweep its
deadline. Made in the serving process, that work shares the CPU the live
requests need, and the live p50 rose by ~14 % at 100 % mirroring
(``python -m bench.shadow_mirroring``). So by default a gateway process hands
each shadow call to a *shadow caller*, a child process it starts when it routes
a config with a shadow, or else on the first call
(``python -m gateway.shadow_caller``): one ``write`` on a Unix socket out, and
the answer back on the same socket, many per wake-up. The child holds the
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
import math
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple, Protocol

from gateway.upstream import UpstreamError, UpstreamResponse

if TYPE_CHECKING:  # not imported at run time: the child would load the Redis client with it
    from gateway.edges import Upstream

__all__ = ["InlineShadowCalls", "ShadowCall", "ShadowCalls", "ShadowProcess", "shadow_calls"]

log = logging.getLogger("abgate.shadows")

FRAME = struct.Struct("!I")
CALL = struct.Struct("!IdBHHHI")
ANSWER = struct.Struct("!Ih")
ERROR_KINDS = ("connect_error", "timeout", "protocol")
METHODS = (b"POST", b"GET")
RESTART_AFTER_S = 1.0  # a child that died is started again at most this often
# A call the child has not answered this long after its own deadline (counted from when
# the call was written to it) is failed here as a timeout, so a stuck child (stopped,
# starved) cannot hold the shadow's slots forever.
ANSWER_GRACE_S = 5.0
OVERDUE_SCAN_S = 1.0  # how often the calls in flight are checked for that
# A gateway that is stopping lets the shadow calls already made finish, this long at
# most, so their answers are compared and recorded like any other (the last requests'
# shadows are not lost as errors): within the stop's margin (``SHUTDOWN_MARGIN_S``).
DRAIN_S = 3.0
# The serving process deals with its shadow calls on a tick of its own, every TICK_S
# while any is queued or in flight: it writes the calls queued since the last tick in
# one write, then reads the answers that came meanwhile (it does not read the socket
# between ticks). So mirroring costs it no wake-up per call or per answer (on a 2-core
# VM, each wake-up of an idle process cost more CPU than the call's own work), and the
# child and the shadow's server never wake at the instant a live answer is written.
# A shadow call starts and is counted up to 2 TICK_S later: nobody waits for it.
TICK_S = 0.025


Result = UpstreamResponse | UpstreamError
Done = Callable[[Result], None]


class ShadowCall(NamedTuple):
    """One shadow call: the shadow's endpoint and what to send it."""

    pool: Upstream
    path: bytes
    body: bytes
    headers: bytes  # extra header lines, each ending in CRLF
    timeout_s: float
    method: bytes = b"POST"
    content_type: bytes = b"application/json"


class ShadowCalls(Protocol):
    """Makes shadow calls; each one's answer (or ``UpstreamError``) goes to its ``done``."""

    def call(self, call: ShadowCall, done: Done) -> None:
        """Start the call; ``done`` runs once, later, with how it ended."""
        ...

    def prepare(self) -> None:
        """Get ready for calls to come (start the child process now, if any)."""
        ...

    async def close(self) -> None:
        """Stop making calls (the child process, if any, exits)."""
        ...


class InlineShadowCalls:
    """Shadow calls made in the serving process, on its own pools, a task each."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def call(self, call: ShadowCall, done: Done) -> None:
        """Make ``call`` from this process, in a task nobody awaits."""
        task = asyncio.get_running_loop().create_task(self._call(call, done))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def prepare(self) -> None:
        """Nothing to start: calls are made here."""

    @staticmethod
    async def _call(call: ShadowCall, done: Done) -> None:
        try:
            result: Result = await call.pool.request(
                call.path, call.body, call.headers, call.timeout_s, call.method,
                call.content_type,
            )  # fmt: skip
        except UpstreamError as exc:
            result = exc
        done(result)

    async def close(self) -> None:
        """Let the calls in flight finish (``DRAIN_S`` at most); the pools close later."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=DRAIN_S)


def encode_call(call_id: int, call: ShadowCall) -> bytes:
    """One call as a frame."""
    url = call.pool.url.encode()
    path, body, headers, content_type = call.path, call.body, call.headers, call.content_type
    head = CALL.pack(
        call_id, call.timeout_s, METHODS.index(call.method), len(url), len(path),
        len(content_type), len(headers),
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
    """The parent's end of the socket: each answer goes to its call's ``done``."""

    def __init__(self, owner: ShadowProcess) -> None:
        self.owner = owner
        self.frames = Frames()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]  # read at the ticks only

    def data_received(self, data: bytes) -> None:
        waiting = self.owner.waiting
        for frame in self.frames.feed(data):
            call_id, status = ANSWER.unpack_from(frame)
            found = waiting.pop(call_id, None)
            if found is None:
                continue
            pool, done, _ = found
            body = frame[ANSWER.size :]
            if status < 0:
                pool.note(False)
                done(UpstreamError(ERROR_KINDS[-status - 1], body.decode()))
            else:
                pool.note(status < 500)
                done(UpstreamResponse(status, body))
        transport = self.owner.transport
        if transport is not None and not transport.is_closing():
            transport.pause_reading()  # until the next tick

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost()


@dataclass
class ShadowProcess:
    """Shadow calls made by a child process this one starts (``prepare``, or the first call).

    A call costs this process one frame written and one read back, a tick's
    worth at a time (``TICK_S``): no task, no future, no wake-up of its own.
    """

    process: subprocess.Popen[bytes] | None = None
    transport: asyncio.Transport | None = None
    waiting: dict[int, tuple[Upstream, Done, float]] = field(default_factory=dict)
    started: float = 0.0
    starts: int = 0
    _next_id: int = 0
    # Calls not written yet: (id, timeout, frame). A call's deadline here starts when it
    # is written, not while the child is still starting (seconds, on a busy machine).
    _outbox: list[tuple[int, float, bytes]] = field(default_factory=list)
    _starting: asyncio.Task[None] | None = None
    _closed: bool = False  # no more calls taken: the gateway is stopping
    _ended: bool = False  # and the calls made are finished or given up
    _exited: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _ticking: bool = False
    _next_scan: float = 0.0

    def call(self, call: ShadowCall, done: Done) -> None:
        """Queue the call for the child; written at the next tick (``TICK_S``)."""
        if self._closed:
            done(UpstreamError("connect_error", "the gateway is stopping"))
            return
        self._next_id = call_id = (self._next_id + 1) & 0xFFFFFFFF
        self.waiting[call_id] = (call.pool, done, math.inf)
        self._outbox.append((call_id, call.timeout_s, encode_call(call_id, call)))
        if not self._ticking:
            self._ticking = True
            asyncio.get_running_loop().call_later(TICK_S, self._tick)

    def prepare(self) -> None:
        """Start the child now, so that it is up when the first call comes (a child that
        died is started again by the next call, as before)."""
        if self.starts == 0 and self._starting is None and not self._closed:
            self._start()

    def _tick(self) -> None:
        """Write the queued calls, read the answers that came; again while any is left."""
        transport = self.transport
        loop = asyncio.get_running_loop()
        if transport is None or transport.is_closing():
            if self._starting is None and self._outbox:
                self._start()
        else:
            if self._outbox:
                queued, self._outbox = self._outbox, []
                transport.write(b"".join(frame for _, _, frame in queued))
                written, waiting = loop.time(), self.waiting
                for call_id, timeout_s, _ in queued:
                    found = waiting.get(call_id)
                    if found is not None:
                        waiting[call_id] = (
                            found[0],
                            found[1],
                            written + timeout_s + ANSWER_GRACE_S,
                        )
            if self.waiting:
                transport.resume_reading()
        if self.waiting and loop.time() >= self._next_scan:
            self._next_scan = loop.time() + OVERDUE_SCAN_S
            self._fail_overdue(loop.time())
        if self._outbox or self.waiting:
            loop.call_later(TICK_S, self._tick)
        else:
            self._ticking = False

    def _fail_overdue(self, now: float) -> None:
        overdue = [call_id for call_id, (_, _, due) in self.waiting.items() if due <= now]
        if not overdue:
            return
        log.warning("the shadow caller process has not answered %d calls in time", len(overdue))
        for call_id in overdue:
            pool, done, _ = self.waiting.pop(call_id)
            pool.note(False)
            done(UpstreamError("timeout", "the shadow caller process did not answer in time"))

    def _start(self) -> None:
        if time.monotonic() - self.started < RESTART_AFTER_S:
            self._fail_all("the shadow caller process exited a moment ago")
            return
        self.started = time.monotonic()
        self._exited = [p for p in self._exited if p.poll() is None]
        self._starting = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        ours: socket.socket | None = None
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            with theirs:
                self.process = subprocess.Popen(
                    [sys.executable, "-m", "gateway.shadow_caller", str(theirs.fileno())],
                    pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                )  # fmt: skip
            transport, _ = await loop.create_unix_connection(lambda: _Answers(self), sock=ours)
        except OSError as exc:
            log.error("cannot start the shadow caller process: %s", exc)
            if ours is not None:
                ours.close()  # a child already started sees its socket end, and exits
            if self.process is not None:
                self._exited.append(self.process)
                self.process = None
            self._fail_all(f"no shadow caller process: {exc}")
            return
        finally:
            self._starting = None
        self.transport = transport
        self.starts += 1
        log.info("shadow calls go through process %d", self.process.pid)
        if self._ended:
            transport.close()

    def _fail_all(self, message: str) -> None:
        self._outbox.clear()
        waiting, self.waiting = self.waiting, {}
        for pool, done, _ in waiting.values():
            pool.note(False)
            done(UpstreamError("connect_error", message))

    def lost(self) -> None:
        """The socket closed: the child exited (or is being stopped)."""
        self.transport = None
        if self.waiting and not self._ended:
            log.warning(
                "the shadow caller process exited with %d calls in flight", len(self.waiting)
            )
        self._fail_all("the shadow caller process exited")
        if self.process is not None:
            self._exited.append(self.process)  # reaped by the next start, or by close()
            self.process = None

    async def close(self) -> None:
        """Take no more calls, let those made finish (``DRAIN_S`` at most), then close
        the socket: the child exits."""
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + DRAIN_S
        while (self._outbox or self.waiting) and loop.time() < deadline:
            await asyncio.sleep(TICK_S)  # the tick writes and reads meanwhile
        self._ended = True
        if self._starting is not None:
            await asyncio.wait([self._starting], timeout=5.0)
        if self.transport is not None:
            self.transport.close()
        self._fail_all("the gateway is stopping")
        processes = [*self._exited, *([self.process] if self.process is not None else [])]
        deadline = time.monotonic() + 2.0
        while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def shadow_calls(in_process: bool) -> ShadowCalls:
    """The shadow calls a gateway process makes: inline, or through a child."""
    return InlineShadowCalls() if in_process else ShadowProcess()
