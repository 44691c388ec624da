"""Forwarding to model workers: pooled keep-alive HTTP/1.1 over asyncio protocols.

The hot path's client is a small purpose-built one: a worker answers a short
JSON body with Content-Length, so a connection is an asyncio Protocol feeding
httptools' response parser, kept in a per-endpoint idle pool. It costs a
fraction of a general client's per-request work (measured in ``make bench``).
Upstream URLs only ever come from the experiment config.

Failures are typed (``connect_error``, ``timeout``, ``5xx``, ``protocol``) so
the fallback policy can decide on them; an endpoint that fails several times
in a row is ejected for a cool-down, and round-robin skips it.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httptools

if TYPE_CHECKING:
    from gateway.edges import Upstream

__all__ = ["EndpointPool", "UpstreamError", "UpstreamResponse", "VariantEndpoints"]


class UpstreamError(Exception):
    """A call to a worker failed; ``kind`` says how."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    """Status and body of a worker's answer."""

    status: int
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; one request in flight at a time."""

    __slots__ = (
        "_body",
        "_keep_alive",
        "_parser",
        "_status",
        "_waiter",
        "closed",
        "transport",
    )

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._waiter: asyncio.Future[UpstreamResponse] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._body: list[bytes] = []
        self._status = 0
        self._keep_alive = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError("protocol", f"bad response from worker: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(UpstreamError("connect_error", "worker closed the connection"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._keep_alive = self._parser.should_keep_alive()
        waiter, self._waiter = self._waiter, None
        body = b"".join(self._body)
        self._body = []
        self._parser = httptools.HttpResponseParser(self)
        if waiter is not None and not waiter.done():
            waiter.set_result(UpstreamResponse(self._status, body))

    def _fail(self, error: UpstreamError) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    def send(self, data: bytes, waiter: asyncio.Future[UpstreamResponse]) -> None:
        """Write one request; ``waiter`` gets the response."""
        assert self.transport is not None
        self._waiter = waiter
        self.transport.write(data)

    @property
    def reusable(self) -> bool:
        """Whether the connection can carry another request."""
        return not self.closed and self._keep_alive and self._waiter is None

    def close(self) -> None:
        """Close the connection."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


@dataclass(eq=False)
class EndpointPool:
    """Idle keep-alive connections to one worker endpoint, plus its health."""

    url: str
    max_idle: int = 64
    eject_after: int = 3
    eject_for_s: float = 5.0
    host: str = field(init=False)
    port: int = field(init=False)
    _idle: deque[_Connection] = field(init=False, default_factory=deque)
    _host_header: bytes = field(init=False)
    # A server behind an ingress prefix (other protocols than abgate's): prepended to paths.
    base_path: bytes = field(init=False, default=b"")
    _tls: ssl.SSLContext | None = field(init=False, default=None)
    failures: int = field(init=False, default=0)
    ejected_until: float = field(init=False, default=0.0)
    _deadlines: _Deadlines | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported worker URL {self.url!r} (http(s)://host:port)")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._host_header = f"{self.host}:{self.port}".encode()
        self.base_path = parts.path.rstrip("/").encode()

    @property
    def healthy(self) -> bool:
        """False while ejected after consecutive failures."""
        return self.ejected_until <= time.monotonic()

    def note(self, ok: bool) -> None:
        """One call's outcome: enough failures in a row eject the endpoint for a while."""
        if ok:
            self.failures = 0
            return
        self.failures += 1
        if self.failures >= self.eject_after:
            self.ejected_until = time.monotonic() + self.eject_for_s

    async def _connect(self, loop: asyncio.AbstractEventLoop, timeout_s: float) -> _Connection:
        """A new connection, within ``timeout_s`` (a black-holed host must not hang a call)."""
        try:
            async with asyncio.timeout(timeout_s):
                transport, conn = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self._tls
                )
        except TimeoutError as exc:
            raise UpstreamError("timeout", f"{self.url} did not connect in time") from exc
        except OSError as exc:
            raise UpstreamError("connect_error", f"cannot connect to {self.url}: {exc}") from exc
        # uvloop calls connection_made only on the next loop turn.
        conn.transport = transport
        return conn

    def _idle_connection(self) -> _Connection | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.reusable:
                return conn
            conn.close()
        return None

    async def request(
        self,
        path: bytes,
        body: bytes,
        headers: bytes,
        timeout_s: float,
        method: bytes = b"POST",
        content_type: bytes = b"application/json",
    ) -> UpstreamResponse:
        """``method`` (POST) ``body`` to ``path``; ``headers`` are extra pre-encoded lines."""
        # The pool's loop, not asyncio.get_running_loop(): that costs a getpid()
        # system call per call. A pool lives on one loop (a new one after a close).
        deadlines = self._deadlines
        if deadlines is None or deadlines.loop.is_closed():
            deadlines = self._deadlines = _Deadlines(asyncio.get_running_loop())
        loop = deadlines.loop
        deadline = loop.time() + timeout_s
        payload = (
            b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s"
            % (method, path, self._host_header, content_type, len(body), headers, body)
        )
        conn = self._idle_connection()
        # A pooled connection the worker closed a moment ago fails before any
        # byte comes back; that, and only that, is retried once on a new one.
        for attempt in (0, 1):
            reused = conn is not None
            waiter: asyncio.Future[UpstreamResponse] = loop.create_future()
            deadlines.add(waiter, deadline, self.url, timeout_s)
            try:
                if conn is None:
                    conn = await self._connect(loop, max(deadline - loop.time(), 0.0))
                conn.send(payload, waiter)
                response = await waiter
            except UpstreamError as exc:
                if waiter.done() and not waiter.cancelled():
                    waiter.exception()  # failed by its deadline while connecting: seen, not logged
                if conn is not None:
                    conn.close()
                conn = None
                if reused and attempt == 0 and exc.kind == "connect_error":
                    continue
                self.note(False)
                raise
            finally:
                deadlines.discard(waiter)
            break
        assert conn is not None
        if conn.reusable and len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()
        self.note(response.status < 500)
        return response

    def close(self) -> None:
        """Close every idle connection."""
        while self._idle:
            self._idle.pop().close()


class _Deadlines:
    """Fails the calls whose deadline has passed, checked every ``RESOLUTION_S``.

    A loop timer per call (``call_at`` + ``cancel``) costs ~1.5 us with uvloop,
    a tenth of the gateway's own work per request; a dict entry costs ~0.1 us,
    and one sweep every few milliseconds over the calls in flight costs little.
    A timeout fires at most ``RESOLUTION_S`` late.
    """

    RESOLUTION_S = 0.005

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._waiting: dict[asyncio.Future[UpstreamResponse], tuple[float, str, float]] = {}
        self._armed = False

    def add(
        self, waiter: asyncio.Future[UpstreamResponse], deadline: float, url: str, timeout_s: float
    ) -> None:
        """Fail ``waiter`` with a timeout once ``deadline`` (loop time) has passed."""
        self._waiting[waiter] = (deadline, url, timeout_s)
        if not self._armed:
            self._armed = True
            self.loop.call_later(self.RESOLUTION_S, self._sweep)

    def discard(self, waiter: asyncio.Future[UpstreamResponse]) -> None:
        """The call ended: forget its deadline."""
        self._waiting.pop(waiter, None)

    def _sweep(self) -> None:
        now = self.loop.time()
        expired = [w for w, (deadline, _, _) in self._waiting.items() if deadline <= now]
        for waiter in expired:
            _, url, timeout_s = self._waiting.pop(waiter)
            if not waiter.done():
                message = f"{url} did not answer in {timeout_s}s"
                waiter.set_exception(UpstreamError("timeout", message))
        if self._waiting:
            self.loop.call_later(self.RESOLUTION_S, self._sweep)
        else:
            self._armed = False


class VariantEndpoints:
    """Round-robin over a variant's endpoints, skipping ejected ones."""

    def __init__(self, pools: list[Upstream]) -> None:
        self.pools = pools
        self._next = 0

    def pick(self) -> Upstream:
        """The next healthy endpoint (or, when all are ejected, the next one anyway)."""
        count = len(self.pools)
        for _ in range(count):
            pool = self.pools[self._next % count]
            self._next += 1
            if pool.healthy:
                return pool
        pool = self.pools[self._next % count]
        self._next += 1
        return pool
