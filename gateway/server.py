"""abgate's own HTTP/1.1 server: the gateway's hot paths without ASGI in between.

uvicorn turns every request into ASGI messages and writes each response in two
transport writes (headers, then body); on the gateway's hot path that costs
more CPU than abgate's own work. This server is an asyncio ``Protocol``
(uvloop when importable) feeding httptools' request parser, and it calls the
gateway directly:

- ``POST /predict``, ``POST /v1/{model}/predict``, ``POST /feedback``,
  ``GET /health``, ``GET /ready`` and ``GET /metrics`` (and HEAD of these three,
  the same head without the body), and the model servers' own paths
  (``gateway/protocols.py``), go to the same code
  ``gateway.app.Gateway`` runs under ASGI, and each response leaves in ONE
  ``transport.write`` (status line, headers and body);
- every other request (``/admin``, ``/docs``, ``/openapi.json``, other methods)
  goes to the FastAPI admin app through a small ASGI bridge (``_Exchange``).

HTTP/1.1 keep-alive and pipelining (answers in request order), HTTP/1.0,
``Connection: close``, ``Expect: 100-continue`` and chunked request bodies are
handled. A request body over ``max_body_bytes`` gets 413 on every path (the
admin app's too: under uvicorn only the hot paths had a limit); an unparsable
request gets 400 and a closed connection.

Slow and greedy clients are bounded (``Settings.http_*``, each answer followed by
a closed connection): a request head gets ``http_head_timeout_s`` from its first
byte and a body ``http_body_timeout_s`` after its head, however slowly bytes
trickle in (408); the head's bytes are counted as they arrive, separators
included, so an unterminated header line is refused at ``http_max_head_bytes``
(431; 414 for the request line) before httptools buffers more of it, as are
heads with over ``http_max_headers`` fields; past ``http_max_connections`` open
connections a new one is answered 503; a client that takes no byte of its
answers for ``http_write_timeout_s`` is dropped. Connections idle (or stalled)
for ``http_keep_alive_timeout_s`` are closed. After a refusal the server
half-closes and drops what the client still sends for ``LINGER_S`` (a close
with unread bytes would send a reset, which can overtake the answer). The
checks of time run in one sweep over the connections (a few times a second),
not per request; those of size are a few integer operations per read. All are
counted in ``/metrics`` (``abgate_http_*``). SIGTERM/SIGINT stop accepting, let
the requests already received finish (up to ``graceful_timeout`` seconds; a
connection that has not sent a byte yet gets ``NEW_CONNECTION_GRACE_S`` to send its
request, answered with ``Connection: close``), then run
``Gateway.shutdown()``. ``workers > 1`` forks that many processes, each with its
own listening socket on the port (``SO_REUSEPORT``: the kernel spreads the
connections) and its own gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import sys
import time
import urllib.parse
from collections import deque
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

import httptools
import orjson

from gateway import metrics_dir
from gateway.app import Gateway
from gateway.forwarded import TrustedProxies
from gateway.hotpath import Answer
from gateway.process_figures import HttpFigures
from gateway.protocols import protocol_call

try:  # pragma: no cover - depends on the platform
    from uvloop import new_event_loop as _new_event_loop
except ImportError:  # pragma: no cover
    _new_event_loop = None  # type: ignore[assignment]

__all__ = ["serve"]

log = logging.getLogger("abgate.server")

GatewayFactory = Callable[[], Gateway]
Headers = list[tuple[bytes, bytes]]

MAX_QUEUED_REQUESTS = 32  # pipelined requests buffered before reading pauses
REFUSAL_LOG_INTERVAL_S = 10.0  # connections refused at the cap: one warning per interval
# After refusing a request the server half-closes and discards what the client still sends
# for this long: closing with unread bytes would send a reset, which can overtake the answer.
LINGER_S = 2.0
# At SIGTERM a connection accepted a moment ago may have its first request still on the
# wire: closing it as idle would leave that client with an end-of-file and no way to know
# whether its request was taken. Such a connection gets this long to send it.
NEW_CONNECTION_GRACE_S = 2.0
STARTUP_FAILURE = 3  # exit code when the gateway cannot start (as uvicorn)
SHUTDOWN_MARGIN_S = 10.0  # a process's shutdown after its connections: watcher 2 s, flush 5 s
ORPHAN_CHECK_S = 1.0  # how often a forked server process checks its supervisor is alive

_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_JSON = b"content-type: application/json\r\n"
_METRICS = b"content-type: text/plain; version=0.0.4; charset=utf-8\r\n"
_TEXT = b"content-type: text/plain; charset=utf-8\r\n"
_CLOSE = b"connection: close\r\n"
_KEEP_ALIVE = b"connection: keep-alive\r\n"
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_HEALTHY = orjson.dumps({"status": "healthy"})
_INVALID = orjson.dumps({"status": "error", "error": "invalid HTTP request"})
_INTERNAL_ERROR = Answer(500, b"Internal Server Error", [])  # as uvicorn answers a failed app
_NO_BODY_STATUSES = frozenset({204, 304})
# Header names are tokens; values carry no control characters but tab (as uvicorn checks).
_BAD_HEADER_NAME = re.compile(b'[\x00-\x20\x7f()<>@,;:\\[\\]={}\t\\\\"/?]')
_BAD_HEADER_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


# --- responses ---------------------------------------------------------------------


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


def _error(status: int, message: str) -> Answer:
    """The gateway's error answer (the same JSON as ``gateway.app``)."""
    return Answer(status, orjson.dumps({"status": "error", "error": message}), [])


def _encode(
    answer: Answer, content_type: bytes, date: bytes, connection: bytes, head: bool = False
) -> bytes:
    """Status line, headers and body of one response, ready for a single write.

    ``head``: the answer to a HEAD request, the GET's headers (its length too) and no body.
    """
    body = answer.body
    parts = [_status_line(answer.status), content_type, b"content-length: %d\r\n" % len(body)]
    for name, value in answer.headers:
        parts.append(b"%s: %s\r\n" % (name, value))
    parts += (date, connection, b"\r\n", b"" if head else body)
    return b"".join(parts)


class _Clock:
    """The ``date`` header line, formatted at most once a second."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"date: %s\r\n" % formatdate(now, usegmt=True).encode()
        return self._line


# --- requests ----------------------------------------------------------------------


class _Request:
    """One parsed request (its body read in full)."""

    __slots__ = (
        "body",
        "expect_continue",
        "head_size",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "queued",
        "size",
        "too_large",
        "url",
    )

    def __init__(self) -> None:
        self.url = b""
        self.head_size = 0
        self.headers: Headers = []
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.expect_continue = False
        self.queued = False
        self.method = b""
        self.http_version = "1.1"
        self.keep_alive = True

    def content(self) -> bytes:
        """The request body."""
        body = self.body
        return body[0] if len(body) == 1 else b"".join(body)

    def content_length(self) -> int | None:
        """The declared Content-Length, if any and numeric."""
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit():
                return int(value)
        return None


_REFUSED = _Request()  # queued in place of a request refused while parsing (its answer kept)


def _split_url(url: bytes) -> tuple[str, bytes, bytes]:
    """(path, raw_path, query_string) of a request target, as uvicorn reads them."""
    parsed = httptools.parse_url(url)
    raw_path: bytes = parsed.path or b""
    path = raw_path.decode("ascii")
    if "%" in path:
        path = urllib.parse.unquote(path)
    return path, raw_path, parsed.query or b""


# --- the ASGI bridge ---------------------------------------------------------------


class _Exchange:
    """One request handed to an ASGI app: ``receive`` and ``send``, the response collected.

    ``receive`` gives the whole body once, then waits until the response is
    complete or the client is gone and reports ``http.disconnect``. ``send``
    collects the start message and every body chunk (``more_body`` included).
    """

    def __init__(self, body: bytes, loop: asyncio.AbstractEventLoop) -> None:
        self._body: bytes | None = body
        self._done: asyncio.Future[None] = loop.create_future()
        self.status = 0
        self.headers: Headers = []
        self.chunks: list[bytes] = []
        self.started = False
        self.complete = False

    def finish(self) -> None:
        """The response is complete or the client went away: wake a waiting ``receive``."""
        if not self._done.done():
            self._done.set_result(None)

    async def receive(self) -> dict[str, Any]:
        """ASGI receive."""
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.shield(self._done)
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        """ASGI send."""
        kind = message["type"]
        if kind == "http.response.start" and not self.started:
            self.status = int(message["status"])
            self.headers = [(bytes(n).lower(), bytes(v)) for n, v in message.get("headers", ())]
            self.started = True
        elif kind == "http.response.body" and self.started and not self.complete:
            self.chunks.append(bytes(message.get("body", b"")))
            if not message.get("more_body", False):
                self.complete = True
                self.finish()
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r} here")

    def encode(self, head_only: bool, date: bytes, keep_alive: bool) -> tuple[bytes, bool]:
        """The collected response as bytes, and whether the connection stays open."""
        body = b"".join(self.chunks)
        if head_only or self.status in _NO_BODY_STATUSES or self.status < 200:
            body = b""
            length_ok = True
        else:
            length_ok = False
        parts = [_status_line(self.status)]
        has_date = False
        for name, value in self.headers:
            if _BAD_HEADER_NAME.search(name) or _BAD_HEADER_VALUE.search(value):
                raise RuntimeError(f"invalid response header {name!r}")
            if name == b"transfer-encoding":
                continue  # the body is sent whole, with its length
            if name == b"connection":
                keep_alive = keep_alive and value.lower() != b"close"
                continue
            if name == b"content-length":
                length_ok = True
            has_date = has_date or name == b"date"
            parts.append(b"%s: %s\r\n" % (name, value))
        if not length_ok:
            parts.append(b"content-length: %d\r\n" % len(body))
        if not has_date:
            parts.append(date)
        if not keep_alive:
            parts.append(_CLOSE)
        parts += (b"\r\n", body)
        return b"".join(parts), keep_alive


def _forwarded(headers: Headers, name: bytes) -> bytes | None:
    """Every ``name`` field of a request, joined as one list (each proxy may add one)."""
    values = [value for key, value in headers if key == name]
    return b",".join(values) if values else None


def _addresses(transport: asyncio.BaseTransport) -> tuple[Any, Any]:
    """(client, server) for an ASGI scope: host and port, or None when unknown."""

    def pair(info: Any) -> Any:
        return (str(info[0]), int(info[1])) if isinstance(info, tuple) and len(info) >= 2 else None

    return pair(transport.get_extra_info("peername")), pair(transport.get_extra_info("sockname"))


# --- the connection ----------------------------------------------------------------


class _Connection(asyncio.Protocol):
    """One client connection: parse requests, answer them one after another, in order."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.gateway = server.gateway
        self.limit = server.gateway.settings.max_body_bytes
        self.max_head_bytes = server.max_head_bytes  # read per header: one attribute away
        self.max_headers = server.max_headers
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current: _Request | None = None  # being parsed
        self.queue: deque[_Request] = deque()  # parsed, not answered yet
        self.task: asyncio.Task[None] | None = None  # answers the queue, one per connection
        self.busy = False  # an answer is being made
        self.last_active = self.loop.time()
        self.lost = False
        self._wakeup: asyncio.Future[None] | None = None  # the task waits for a request
        self._broken = False  # parse no more bytes: close once the queue is answered
        self._reading_paused = False
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused
        self._exchange: _Exchange | None = None
        self._refusal: Answer | None = None  # the answer to _REFUSED (None: 400)
        # The request being read is in its head until httptools reports the method.
        self._phase_since = 0.0  # when its head (then its body) began
        self._head_bytes = 0  # bytes of its head in whole reads (see data_received)
        self._stalled_since: float | None = None  # answers waiting unread since then
        self._stalled_pending = 0  # bytes waiting then
        self._linger_until = 0.0  # half-closed after a refusal: closed at this time
        self.peer: str | None = None  # the address connected from (a proxy's, behind one)
        self.fresh = True  # not a byte received yet

    # asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport
        server = self.server
        peer = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) and peer else None
        if len(server.connections) >= server.max_connections:
            self._broken = True
            server.refuse(transport)  # type: ignore[arg-type]
            return
        server.connections.add(self)

    def data_received(self, data: bytes) -> None:
        self.last_active = self.loop.time()
        self.fresh = False
        if self._broken:
            return
        # The head in progress before this read, and the requests queued: the bytes of a
        # head are counted by whole reads, without a Python loop over them (see below).
        current = self.current
        reading_head = current if current is not None and not current.method else None
        queued = len(self.queue)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol switch here: a complete request is answered as plain HTTP.
            incomplete, self.current = self.current, None
            self._stop_parsing(_REFUSED if incomplete is not None else None)
            return
        except httptools.HttpParserError:
            if not self._broken:  # else a callback refused the head, its answer kept
                self.current = None
                self._stop_parsing(_REFUSED)
            return
        # A head still open after this read: when it began before it, or no request ended
        # in it, all of the read is head. httptools holds a header line until it ends, so
        # this is where an unterminated one is stopped. Otherwise the read also held the end
        # of an earlier request: the callbacks' count stands for this read.
        current = self.current
        if current is not None and not current.method:
            if current is reading_head:
                self._head_bytes += len(data)
            else:
                self._head_bytes = len(data) if len(self.queue) == queued else 0
            if self._head_bytes > self.max_head_bytes:
                self._refuse_head(431, "request head")

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.queue.clear()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        if self._exchange is not None:
            self._exchange.finish()
        if self.task is None:
            self.server.connections.discard(self)
        else:
            self._wake()

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        writable, self._writable = self._writable, None
        if writable is not None and not writable.done():
            writable.set_result(None)

    # httptools callbacks -----------------------------------------------------------

    def on_message_begin(self) -> None:
        self.current = _Request()
        self._phase_since = self.last_active

    def on_url(self, url: bytes) -> None:
        request = self.current
        assert request is not None
        request.url += url
        request.head_size += len(url)
        if request.head_size > self.max_head_bytes:
            self._refuse_head(414, "request target")
            raise ValueError("request target too long")  # feed_data stops

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.current
        assert request is not None
        request.head_size += len(name) + len(value) + 4  # ": " and CRLF
        if request.head_size > self.max_head_bytes:
            self._refuse_head(431, "request head")
            raise ValueError("request head too large")  # feed_data stops
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            request.expect_continue = True
        request.headers.append((name, value))

    def on_headers_complete(self) -> None:
        request = self.current
        assert request is not None
        parser = self.parser
        request.method = parser.get_method()
        request.http_version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        self._phase_since = self.last_active
        # Counted once the head is complete: the byte limit already bounds what many
        # small fields can hold (each costs at least 4 bytes).
        if len(request.headers) > self.max_headers:
            self._refuse_head(431, "header fields", self.max_headers)
            raise ValueError("too many header fields")  # feed_data stops
        if request.expect_continue:
            self._continue_or_refuse(request)

    def on_body(self, body: bytes) -> None:
        request = self.current
        assert request is not None
        request.size += len(body)
        if request.size > self.limit:
            request.too_large = True
            request.body.clear()  # read on and dropped, so the connection stays usable
        else:
            request.body.append(body)

    def on_message_complete(self) -> None:
        request, self.current = self.current, None
        assert request is not None
        if not request.queued:
            self._enqueue(request)

    # request flow ----------------------------------------------------------------

    def _continue_or_refuse(self, request: _Request) -> None:
        """Answer ``Expect: 100-continue``; a body declared too big gets 413 without it."""
        length = request.content_length()
        if length is not None and length > self.limit:
            request.too_large = True
            request.keep_alive = False  # the body never comes: close after the 413
            self._enqueue(request)
            self._stop_parsing(None)
        elif not self.busy and not self.queue and self.transport is not None:
            self.transport.write(_CONTINUE)  # only when no earlier answer is still owed

    def _refuse_head(self, status: int, what: str, limit: int | None = None) -> None:
        """Answer ``status`` for a head over a limit (once), read no more, then close."""
        if self._broken:
            return
        self.server.heads_refused += 1
        bound = f"{limit} fields" if limit is not None else f"{self.server.max_head_bytes} bytes"
        self._refusal = _error(status, f"{what} over the limit of {bound}")
        self.current = None
        self._stop_parsing(_REFUSED)

    def check_deadlines(self, now: float) -> None:
        """Drop a client that reads no answer; answer 408 to a head or body past its deadline.

        Called by the server's sweep, a few times a second, never per request.
        """
        server = self.server
        transport = self.transport
        if transport is None:
            return
        pending = transport.get_write_buffer_size()
        if not pending:
            self._stalled_since = None
        elif self._stalled_since is None or pending < self._stalled_pending:
            self._stalled_since, self._stalled_pending = now, pending  # new, or progress
        elif now - self._stalled_since > server.write_timeout:
            server.timed_out["write"] += 1
            log.warning("dropping a client that read no answer for %gs", server.write_timeout)
            self.abort()
            return
        current = self.current
        if current is None or self._broken or self._reading_paused:
            pass  # nothing being read, reading over, or paused by this server: no deadline
        elif not current.method:
            if now - self._phase_since > server.head_timeout:
                self._time_out("head", server.head_timeout)
        elif now - self._phase_since > server.body_timeout:
            self._time_out("body", server.body_timeout)
        if self._linger_until and now > self._linger_until:
            self.abort()
        elif not self.busy and not self.queue and now - self.last_active > server.keep_alive:
            self.close()

    def _time_out(self, part: str, limit: float) -> None:
        self.server.timed_out[part] += 1
        self._refusal = _error(408, f"request {part} not received within {limit:g}s")
        self.current = None
        self._stop_parsing(_REFUSED)

    def _stop_parsing(self, replacement: _Request | None) -> None:
        """Read no more: answer what is queued (and ``replacement``), then close."""
        self._broken = True
        if replacement is not None:
            self._enqueue(replacement)
        elif not self.busy and not self.queue:
            self.close()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def _enqueue(self, request: _Request) -> None:
        request.queued = True
        self.queue.append(request)
        if self._wakeup is not None:
            self._wake()
        elif self.task is None:
            self.task = self.loop.create_task(self._answer_requests())
        elif len(self.queue) >= MAX_QUEUED_REQUESTS and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()  # type: ignore[union-attr]

    def _wake(self) -> None:
        wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None and not wakeup.done():
            wakeup.set_result(None)

    async def _answer_requests(self) -> None:
        """Answer the queued requests in order, for as long as the connection lives.

        One task per connection (not per request): waking it with a future costs
        less than creating, registering and finishing a task for every request.
        """
        try:
            while not self.lost:
                if not self.queue:
                    if self._broken or (self.server.stopping and self.current is None):
                        self.close()
                        break
                    self.last_active = self.loop.time()
                    self._wakeup = self.loop.create_future()
                    await self._wakeup
                    continue
                request = self.queue.popleft()
                if self._reading_paused and len(self.queue) < MAX_QUEUED_REQUESTS // 2:
                    self._reading_paused = False
                    if not self._broken:
                        self.transport.resume_reading()  # type: ignore[union-attr]
                self.busy = True
                try:
                    data, keep_alive = await self._respond(request)
                except Exception:
                    log.exception("cannot answer a request for %r", request.url[:200])
                    date = self.server.clock.line()
                    data, keep_alive = _encode(_INTERNAL_ERROR, _TEXT, date, _CLOSE), False
                finally:
                    self.busy = False
                if self._writable is not None:
                    await self._writable
                if self.lost:
                    break
                self.transport.write(data)  # type: ignore[union-attr]
                if not keep_alive:
                    if request is _REFUSED:
                        self._linger()
                    else:
                        self.close()
                    break
        finally:
            self.task = None
            if self.lost:
                self.server.connections.discard(self)

    def _keep_alive(self, request: _Request) -> tuple[bool, bytes]:
        """Whether the connection stays open after this answer, and its Connection header."""
        server_stops = self.server.stopping and not self.queue and self.current is None
        if not request.keep_alive or server_stops or (self._broken and not self.queue):
            return False, _CLOSE
        return True, (_KEEP_ALIVE if request.http_version == "1.0" else b"")

    async def _respond(self, request: _Request) -> tuple[bytes, bool]:
        """The encoded answer to one request and whether to keep the connection."""
        if request is _REFUSED:
            answer = self._refusal or Answer(400, _INVALID, [])
            return _encode(answer, _JSON, self.server.clock.line(), _CLOSE), False
        if request.too_large:
            answer = _error(413, f"request body over the limit of {self.limit} bytes")
            keep_alive, connection = self._keep_alive(request)
            return _encode(answer, _JSON, self.server.clock.line(), connection), keep_alive
        try:
            path, raw_path, query = _split_url(request.url)
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            answer = _error(400, "invalid request target")
            return _encode(answer, _JSON, self.server.clock.line(), _CLOSE), False
        try:
            routed = await self._route(request, path)
        except Exception:
            log.exception("exception answering %s %s", request.method.decode(), path)
            routed = _INTERNAL_ERROR, _TEXT
        if routed is None:
            return await self._bridge(request, path, raw_path, query)
        answer, content_type = routed
        keep_alive, connection = self._keep_alive(request)
        date, head = self.server.clock.line(), request.method == b"HEAD"
        return _encode(answer, content_type, date, connection, head), keep_alive

    async def _route(self, request: _Request, path: str) -> tuple[Answer, bytes] | None:
        """The gateway's own endpoints (as ``Gateway._http``); None for the admin app."""
        gateway = self.gateway
        method = request.method
        if method == b"POST":
            if path == "/predict" or (path.startswith("/v1/") and path.endswith("/predict")):
                model = None if path == "/predict" else path[4:-8]
                body, headers = request.content(), dict(request.headers)
                answer = await gateway.hotpath.predict(body, headers, model or None, self.peer)
                return answer, _JSON
            if path == "/feedback":
                return await gateway.hotpath.feedback(request.content()), _JSON
        elif method == b"GET" or method == b"HEAD":
            if path == "/health":
                return Answer(200, _HEALTHY, []), _JSON
            if path == "/ready":
                return await gateway.ready(), _JSON
            if path == "/metrics":
                return Answer(200, gateway.metrics.render(), []), _METRICS
        call = protocol_call(method, path)
        if call is not None:
            body, headers = request.content(), dict(request.headers)
            return await gateway.passthrough.call(call, body, headers, self.peer), _JSON
        if gateway.admin is None:
            return _error(404, "Not Found"), _JSON
        return None

    def _scope(self, request: _Request, path: str, raw_path: bytes, query: bytes) -> dict[str, Any]:
        """The ASGI HTTP scope of a request."""
        assert self.transport is not None
        client, server = _addresses(self.transport)
        scheme = "http"
        proxies = self.server.proxies
        if proxies.trusts(self.peer):
            # Behind a trusted proxy: the client and scheme it reports (gateway/forwarded.py).
            found = proxies.client(self.peer, _forwarded(request.headers, b"x-forwarded-for"))
            if found != self.peer:
                client = (found, 0)
            proto = _forwarded(request.headers, b"x-forwarded-proto")
            scheme = proxies.scheme(self.peer, proto, scheme)
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version,
            "server": server,
            "client": client,
            "scheme": scheme,
            "method": request.method.decode("ascii"),
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": request.headers,
            "state": {},
        }

    async def _bridge(
        self, request: _Request, path: str, raw_path: bytes, query: bytes
    ) -> tuple[bytes, bool]:
        """Answer through the ASGI admin app; a failing app gets 500 or a closed connection."""
        scope = self._scope(request, path, raw_path, query)
        exchange = self._exchange = _Exchange(request.content(), self.loop)
        try:
            await self.gateway.admin(scope, exchange.receive, exchange.send)
        except Exception:
            log.exception("exception in the admin app for %s %s", scope["method"], path)
        finally:
            self._exchange = None
            exchange.finish()
        keep_alive, connection = self._keep_alive(request)
        date = self.server.clock.line()
        if not exchange.complete:
            if exchange.started:
                return b"", False  # half a response cannot be completed: close
            log.error("the admin app sent no response to %s %s", scope["method"], path)
            return _encode(_INTERNAL_ERROR, _TEXT, date, connection), keep_alive
        try:
            return exchange.encode(request.method == b"HEAD", date, keep_alive)
        except RuntimeError:
            log.exception("bad response from the admin app for %s %s", scope["method"], path)
            return _encode(_INTERNAL_ERROR, _TEXT, date, _CLOSE), False

    # closing -----------------------------------------------------------------------

    @property
    def idle(self) -> bool:
        """Nothing being received, queued or answered."""
        return not self.busy and not self.queue and self.current is None

    def _linger(self) -> None:
        """Half-close after a refusal; read and drop what still comes for ``LINGER_S``.

        The client gets the answer and then end-of-file, not a reset for the bytes it
        sent on (an unterminated 64 MiB header, say). The client closing, or the sweep
        at ``LINGER_S``, ends the connection.
        """
        transport = self.transport
        if transport is None or transport.is_closing() or not transport.can_write_eof():
            self.close()
            return
        transport.write_eof()
        self._linger_until = self.loop.time() + LINGER_S
        transport.resume_reading()  # data_received drops it: the parser is done

    def close(self) -> None:
        """Close after what is written has been sent."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection whatever it is doing."""
        if self.transport is not None:
            self.transport.abort()
        self.server.connections.discard(self)


# --- one server process --------------------------------------------------------------


class _Server:
    """A listening socket, its connections and the gateway they serve."""

    def __init__(self, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        self.gateway = gateway
        self.loop = loop
        self.clock = _Clock()
        self.connections: set[_Connection] = set()
        self.stopping = False
        self._listener: asyncio.Server | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        settings = gateway.settings
        self.head_timeout = settings.http_head_timeout_s
        self.body_timeout = settings.http_body_timeout_s
        self.keep_alive = settings.http_keep_alive_timeout_s
        self.write_timeout = settings.http_write_timeout_s
        self.max_head_bytes = settings.http_max_head_bytes
        self.max_headers = settings.http_max_headers
        self.max_connections = settings.http_max_connections
        self.proxies = TrustedProxies(settings.trusted_proxies)
        # Deadlines are checked by a sweep: often enough for the shortest one to hold
        # to within a quarter of it, at most once a second.
        shortest = min(self.head_timeout, self.body_timeout, self.keep_alive, self.write_timeout)
        self.sweep_interval = max(0.05, min(1.0, shortest / 4))
        self.refused = 0  # connections answered 503 at the cap
        self.heads_refused = 0  # heads over the byte or field limit
        self.timed_out = {"head": 0, "body": 0, "write": 0}
        self._refused_logged = 0  # refusals already in a warning
        self._refusal_logged_at = -REFUSAL_LOG_INTERVAL_S
        gateway.metrics.http = self.http_figures

    def refuse(self, transport: asyncio.Transport) -> None:
        """Answer 503 on a connection over the cap and close it (a warning every few seconds)."""
        self.refused += 1
        now = self.loop.time()
        if now - self._refusal_logged_at >= REFUSAL_LOG_INTERVAL_S:
            log.warning(
                "refused %d connection(s) with 503: %d open, ABGATE_HTTP_MAX_CONNECTIONS=%d",
                self.refused - self._refused_logged,
                len(self.connections),
                self.max_connections,
            )
            self._refused_logged, self._refusal_logged_at = self.refused, now
        answer = _error(503, "too many open connections")
        transport.write(_encode(answer, _JSON, self.clock.line(), _CLOSE))
        transport.close()

    def http_figures(self) -> HttpFigures:
        """This process's connection figures for ``/metrics``."""
        return HttpFigures(len(self.connections), self.refused, self.heads_refused,
                           dict(self.timed_out))  # fmt: skip

    async def listen(self, host: str, port: int, *, backlog: int, reuse_port: bool) -> None:
        """Bind the socket; connections are accepted only from ``start``."""
        self._listener = await self.loop.create_server(
            lambda: _Connection(self),
            host,
            port,
            backlog=backlog,
            reuse_address=True,
            reuse_port=reuse_port or None,
            start_serving=False,
        )

    @property
    def port(self) -> int:
        """The port bound (useful after binding port 0)."""
        assert self._listener is not None
        return int(self._listener.sockets[0].getsockname()[1])

    async def start(self) -> None:
        """Accept connections; sweep them for deadlines (idle, head, body, write)."""
        assert self._listener is not None
        await self._listener.start_serving()
        self._sweep()

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in list(self.connections):
            conn.check_deadlines(now)
        self._sweeper = self.loop.call_later(self.sweep_interval, self._sweep)

    async def stop(self, timeout: float) -> None:
        """Stop accepting and let the requests received be answered (up to ``timeout``)."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._listener is not None:
            self._listener.close()
        for conn in list(self.connections):
            if conn.idle and not conn.fresh:
                conn.close()
        now = self.loop.time()
        deadline, grace_ends = now + timeout, now + min(NEW_CONNECTION_GRACE_S, timeout)
        while self.connections and self.loop.time() < deadline:
            if grace_ends is not None and self.loop.time() >= grace_ends:
                grace_ends = None
                for conn in list(self.connections):
                    if conn.idle and conn.fresh:
                        conn.close()  # nothing came
            await asyncio.sleep(0.02)
        if self.connections:
            count = len(self.connections)
            log.warning("dropping %d connection(s) still busy after %gs", count, timeout)
        for conn in list(self.connections):
            conn.abort()


async def _serve_gateway(
    factory: GatewayFactory,
    host: str,
    port: int,
    *,
    backlog: int,
    reuse_port: bool,
    graceful_timeout: float,
    parent: int | None = None,
) -> int:
    """Build, start and serve one gateway until SIGTERM/SIGINT; the process exit code.

    ``parent`` is the supervisor's pid: a server process whose supervisor died
    (SIGKILL, OOM) stops by itself instead of holding the port forever.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    gateway = factory()
    server = _Server(gateway, loop)
    try:
        await server.listen(host, port, backlog=backlog, reuse_port=reuse_port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return 1
    try:
        await gateway.startup()
    except Exception:
        log.exception("gateway failed to start")
        return STARTUP_FAILURE
    await server.start()
    log.info("abgate gateway on http://%s:%d (process %d)", host, server.port, os.getpid())
    if parent is not None:
        _stop_when_orphaned(loop, parent, stop)
    await stop.wait()
    log.info("shutting down: answering the requests in flight (process %d)", os.getpid())
    await server.stop(graceful_timeout)
    await gateway.shutdown()
    log.info("stopped (process %d)", os.getpid())
    return 0


def _stop_when_orphaned(loop: asyncio.AbstractEventLoop, parent: int, stop: asyncio.Event) -> None:
    if os.getppid() != parent:
        log.error("the supervising process %d is gone: stopping (process %d)", parent, os.getpid())
        stop.set()
    else:
        loop.call_later(ORPHAN_CHECK_S, _stop_when_orphaned, loop, parent, stop)


def _run_process(factory: GatewayFactory, host: str, port: int, **options: Any) -> int:
    """Run ``_serve_gateway`` on a fresh event loop (uvloop when importable)."""
    with asyncio.Runner(loop_factory=_new_event_loop) as runner:
        return runner.run(_serve_gateway(factory, host, port, **options))


# --- several processes ------------------------------------------------------------


class _Supervisor:
    """Forks the server processes, forwards SIGTERM/SIGINT, restarts one that dies.

    A process that fails within ``MIN_UPTIME_S`` of its start (or fails to start)
    is not restarted: the others are stopped and the supervisor exits 1. One
    that exits cleanly (it was told to stop) is replaced whenever it ends. Once
    stopping, a process still alive ``kill_after`` seconds later is killed
    (SIGKILL) and the supervisor exits 1: a stop always ends.
    """

    MIN_UPTIME_S = 2.0
    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(
        self,
        target: Callable[[], int],
        count: int,
        kill_after: float,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self.target = target
        self.on_exit = on_exit  # called with the pid of each process reaped
        self.count = count
        self.kill_after = kill_after
        self.children: dict[int, float] = {}  # pid -> start (monotonic)
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        """Start the processes and wait for them all to end; the exit code."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in self.SIGNALS}
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._on_overdue)
        try:
            for _ in range(self.count):
                self._spawn()
            while self.children:
                pid, status = os.wait()
                started = self.children.pop(pid, None)
                if started is not None:
                    if self.on_exit is not None:
                        self.on_exit(pid)
                    self._reap(pid, os.waitstatus_to_exitcode(status), started)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 1 if self.failed else 0

    def _reap(self, pid: int, code: int, started: float) -> None:
        if self.stopping:
            self.failed = self.failed or code != 0
        elif code == STARTUP_FAILURE or (
            # A crash right after starting would crash again: stop instead of looping. A
            # clean exit (0) is a process told to stop (a SIGTERM to it alone): replace it.
            code != 0 and time.monotonic() - started < self.MIN_UPTIME_S
        ):
            log.error("server process %d exited with %d right after starting: stopping", pid, code)
            self.failed = True
            self._stop_all()
        else:
            log.warning("server process %d exited with %d: starting another", pid, code)
            self._spawn()

    def _spawn(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)  # no handler runs mid-fork
        try:
            pid = os.fork()
            if pid == 0:
                self._child()
            self.children[pid] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.SIGNALS)

    def _child(self) -> None:
        """In a forked process: run the server, then exit (never back into the parent's code)."""
        code = 1
        try:
            for signum in self.SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.SIGNALS)
            code = self.target()
        except BaseException:
            log.exception("server process %d failed", os.getpid())
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True
        self._stop_all()

    def _stop_all(self) -> None:
        if not self.stopping or signal.getitimer(signal.ITIMER_REAL)[0] == 0:
            signal.setitimer(signal.ITIMER_REAL, self.kill_after)
        self.stopping = True
        self._signal_all(signal.SIGTERM)

    def _on_overdue(self, signum: int, frame: object) -> None:
        if self.children:
            pids = ", ".join(str(pid) for pid in sorted(self.children))
            log.error("server process(es) %s still running %gs after SIGTERM: killing", pids,
                      self.kill_after)  # fmt: skip
            self.failed = True
            self._signal_all(signal.SIGKILL)

    def _signal_all(self, signum: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def _check_port_free(host: str, port: int) -> None:
    """Raise OSError when something listens on ``host:port`` (SO_REUSEPORT would share it)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


def _configure_logging(level: str) -> None:
    """Log to stderr at ``level`` unless logging is set up already."""
    value = logging.getLevelName(level.upper())
    logging.basicConfig(
        level=value if isinstance(value, int) else logging.INFO,
        format="%(levelname)s:     %(name)s: %(message)s",
    )


def serve(
    factory: GatewayFactory,
    *,
    host: str,
    port: int,
    workers: int = 1,
    backlog: int = 2048,
    graceful_timeout: float = 10.0,
    log_level: str = "info",
    metrics_directory: str = "",
) -> int:
    """Serve the gateway ``factory`` builds (once per process) until SIGTERM/SIGINT.

    With ``workers > 1`` the processes publish their figures in
    ``metrics_directory`` (emptied first; unset: a temporary one, removed at the
    end), which ``factory`` must read from ``ABGATE_METRICS_DIR``.

    Returns the exit code: 0 after a clean stop, 1 when the port cannot be
    bound, ``STARTUP_FAILURE`` (3) when the gateway does not start.
    """
    _configure_logging(log_level)
    options: dict[str, Any] = {"backlog": backlog, "graceful_timeout": graceful_timeout}
    if workers <= 1:
        return _run_process(factory, host, port, reuse_port=False, **options)
    if not hasattr(socket, "SO_REUSEPORT"):
        log.error("--workers needs SO_REUSEPORT, which this platform lacks")
        return 1
    try:
        _check_port_free(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return 1
    log.info("starting %d server processes on http://%s:%d", workers, host, port)
    parent = os.getpid()
    shared = metrics_dir.prepare(metrics_directory)
    os.environ["ABGATE_METRICS_DIR"] = str(shared)  # read by each process's settings
    supervisor = _Supervisor(
        lambda: _run_process(factory, host, port, reuse_port=True, parent=parent, **options),
        workers,
        kill_after=graceful_timeout + SHUTDOWN_MARGIN_S,
        on_exit=lambda pid: metrics_dir.mark_process_dead(shared, pid),
    )
    try:
        return supervisor.run()
    finally:
        if not metrics_directory:
            shutil.rmtree(shared, ignore_errors=True)
