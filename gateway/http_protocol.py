"""abgate's own HTTP/1.1 protocol: one client connection, parsed by httptools.

uvicorn turns every request into ASGI messages and writes each response in two
transport writes (headers, then body); on the gateway's hot path that costs
more CPU than abgate's own work. A ``Connection`` is an asyncio ``Protocol``
(uvloop when importable) feeding httptools' request parser; it asks the front
door (``gateway/front_door.py``) who answers each request and calls that
endpoint directly, so each answer leaves in ONE ``transport.write``; the
requests the front door leaves to the admin app go through the ASGI bridge
(``gateway/asgi_bridge.py``).

HTTP/1.1 keep-alive and pipelining (answers in request order), HTTP/1.0,
``Connection: close``, ``Expect: 100-continue`` and chunked request bodies are
handled. A request body over the front door's body limit gets its 413 on every
path, the admin app's too; an unparsable request gets 400 and a closed
connection.

Slow and greedy clients are bounded (``Settings.http_*``, each answer followed by
a closed connection): a request head gets ``http_head_timeout_s`` from its first
byte and a body ``http_body_timeout_s`` after its head, however slowly bytes
trickle in (408); the head's bytes are counted as they arrive, separators
included, so an unterminated header line is refused at ``http_max_head_bytes``
(431; 414 for the request line) before httptools buffers more of it, as are
heads with over ``http_max_headers`` fields; a client that takes no byte of its
answers for ``http_write_timeout_s`` is dropped. Connections idle (or stalled)
for ``http_keep_alive_timeout_s`` are closed. After a refusal the connection
half-closes and drops what the client still sends for ``LINGER_S`` (a close
with unread bytes would send a reset, which can overtake the answer). The
checks of time run in the server's sweep over its connections
(``gateway/server.py``), not per request; those of size are a few integer
operations per read.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import TYPE_CHECKING

import httptools

from gateway.asgi_bridge import Exchange, http_scope, run_app
from gateway.front_door import JSON, error_answer
from gateway.hotpath import Answer
from gateway.http_wire import (
    CLOSE,
    CONTINUE,
    INTERNAL_ERROR,
    KEEP_ALIVE,
    REFUSED,
    TEXT,
    Request,
    content_type_line,
    encode,
    split_url,
)

if TYPE_CHECKING:
    from gateway.server import Server

__all__ = ["LINGER_S", "MAX_QUEUED_REQUESTS", "Connection"]

log = logging.getLogger("abgate.server")

MAX_QUEUED_REQUESTS = 32  # pipelined requests buffered before reading pauses
# After refusing a request the connection half-closes and discards what the client still
# sends for this long: closing with unread bytes would send a reset, which can overtake
# the answer.
LINGER_S = 2.0
_JSON = content_type_line(JSON)
_INVALID = "invalid HTTP request"


class Connection(asyncio.Protocol):
    """One client connection: parse requests, answer them one after another, in order."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.door = server.door
        self.body_limit = server.door.body_limit
        self.max_head_bytes = server.max_head_bytes  # read per header: one attribute away
        self.max_headers = server.max_headers
        self.loop = server.loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.current: Request | None = None  # being parsed
        self.queue: deque[Request] = deque()  # parsed, not answered yet
        self.task: asyncio.Task[None] | None = None  # answers the queue, one per connection
        self.busy = False  # an answer is being made
        self.last_active = self.loop.time()
        self.lost = False
        self._wakeup: asyncio.Future[None] | None = None  # the task waits for a request
        self._broken = False  # parse no more bytes: close once the queue is answered
        self._reading_paused = False
        self._writable: asyncio.Future[None] | None = None  # set while writing is paused
        self._exchange: Exchange | None = None
        self._refusal: Answer | None = None  # the answer to REFUSED (None: 400)
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
            self._stop_parsing(REFUSED if incomplete is not None else None)
            return
        except httptools.HttpParserError:
            if not self._broken:  # else a callback refused the head, its answer kept
                self.current = None
                self._stop_parsing(REFUSED)
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
        self.current = Request()
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
        if self.body_limit.exceeded(request.size):
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

    def _continue_or_refuse(self, request: Request) -> None:
        """Answer ``Expect: 100-continue``; a body declared too big gets 413 without it."""
        length = request.content_length()
        if length is not None and self.body_limit.exceeded(length):
            request.too_large = True
            request.keep_alive = False  # the body never comes: close after the 413
            self._enqueue(request)
            self._stop_parsing(None)
        elif not self.busy and not self.queue and self.transport is not None:
            self.transport.write(CONTINUE)  # only when no earlier answer is still owed

    def _refuse_head(self, status: int, what: str, limit: int | None = None) -> None:
        """Answer ``status`` for a head over a limit (once), read no more, then close."""
        if self._broken:
            return
        self.server.heads_refused += 1
        bound = f"{limit} fields" if limit is not None else f"{self.server.max_head_bytes} bytes"
        self._refusal = error_answer(status, f"{what} over the limit of {bound}")
        self.current = None
        self._stop_parsing(REFUSED)

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
        self._refusal = error_answer(408, f"request {part} not received within {limit:g}s")
        self.current = None
        self._stop_parsing(REFUSED)

    def _stop_parsing(self, replacement: Request | None) -> None:
        """Read no more: answer what is queued (and ``replacement``), then close."""
        self._broken = True
        if replacement is not None:
            self._enqueue(replacement)
        elif not self.busy and not self.queue:
            self.close()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.pause_reading()

    def _enqueue(self, request: Request) -> None:
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
                    data, keep_alive = encode(INTERNAL_ERROR, TEXT, date, CLOSE), False
                finally:
                    self.busy = False
                if self._writable is not None:
                    await self._writable
                if self.lost:
                    break
                self.transport.write(data)  # type: ignore[union-attr]
                if not keep_alive:
                    if request is REFUSED:
                        self._linger()
                    else:
                        self.close()
                    break
        finally:
            self.task = None
            if self.lost:
                self.server.connections.discard(self)

    def _keep_alive(self, request: Request) -> tuple[bool, bytes]:
        """Whether the connection stays open after this answer, and its Connection header."""
        server_stops = self.server.stopping and not self.queue and self.current is None
        if not request.keep_alive or server_stops or (self._broken and not self.queue):
            return False, CLOSE
        return True, (KEEP_ALIVE if request.http_version == "1.0" else b"")

    async def _respond(self, request: Request) -> tuple[bytes, bool]:
        """The encoded answer to one request and whether to keep the connection."""
        if request is REFUSED:
            answer = self._refusal or error_answer(400, _INVALID)
            return encode(answer, _JSON, self.server.clock.line(), CLOSE), False
        if request.too_large:
            keep_alive, connection = self._keep_alive(request)
            return encode(
                self.door.too_large, _JSON, self.server.clock.line(), connection
            ), keep_alive
        try:
            url = split_url(request.url)
        except (httptools.HttpParserInvalidURLError, UnicodeDecodeError):
            answer = error_answer(400, "invalid request target")
            return encode(answer, _JSON, self.server.clock.line(), CLOSE), False
        path = url[0]
        try:
            route = self.door.route(request.method, path)
            if route is None:
                return await self._bridge(request, url)
            answer = await route.answer(request.content(), request.headers, self.peer)
            content_type = content_type_line(route.content_type)
        except Exception:
            log.exception("exception answering %s %s", request.method.decode(), path)
            answer, content_type = INTERNAL_ERROR, TEXT
        keep_alive, connection = self._keep_alive(request)
        date, head = self.server.clock.line(), request.method == b"HEAD"
        return encode(answer, content_type, date, connection, head), keep_alive

    async def _bridge(self, request: Request, url: tuple[str, bytes, bytes]) -> tuple[bytes, bool]:
        """Answer through the ASGI admin app (``gateway/asgi_bridge.py``)."""
        assert self.door.admin is not None and self.transport is not None
        scope = http_scope(request, url, self.transport, self.peer, self.server.proxies)
        exchange = self._exchange = Exchange(request.content(), self.loop)
        try:
            await run_app(self.door.admin, scope, exchange)
        finally:
            self._exchange = None
        keep_alive, connection = self._keep_alive(request)
        return exchange.response(scope, self.server.clock.line(), keep_alive, connection)

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
