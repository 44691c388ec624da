"""abgate's own HTTP server: one process's listening socket and connections, and ``serve``.

The hot paths without ASGI in between: each connection is a
``gateway/http_protocol.py`` ``Connection`` (httptools), going to the front door
(``gateway/front_door.py``) for the gateway's own paths and through the ASGI
bridge (``gateway/asgi_bridge.py``) to the admin app for the rest.

Past ``http_max_connections`` open connections a new one is answered 503. The
deadlines of every connection (head, body, write, idle) are checked in one
sweep, a few times a second, not per request. All are counted in ``/metrics``
(``abgate_http_*``). SIGTERM/SIGINT stop accepting, let the requests already
received finish (up to ``graceful_timeout`` seconds; a connection that has not
sent a byte yet gets ``NEW_CONNECTION_GRACE_S`` to send its request, answered
with ``Connection: close``), then run ``Gateway.shutdown()``. ``workers > 1``
forks that many processes (``gateway/prefork.py``), each handed the
``Settings`` to build its own gateway from.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from core.settings import Settings
from gateway.app import Gateway
from gateway.forwarded import TrustedProxies
from gateway.front_door import JSON, error_answer
from gateway.http_protocol import Connection
from gateway.http_wire import CLOSE, Clock, content_type_line, encode
from gateway.prefork import STARTUP_FAILURE, serve_forked
from gateway.process_figures import HttpFigures

try:  # pragma: no cover - depends on the platform
    from uvloop import new_event_loop as _new_event_loop
except ImportError:  # pragma: no cover
    _new_event_loop = None  # type: ignore[assignment]

__all__ = ["Server", "serve"]

log = logging.getLogger("abgate.server")

# Builds one process's gateway from the settings it is handed.
GatewayFactory = Callable[[Settings], Gateway]

REFUSAL_LOG_INTERVAL_S = 10.0  # connections refused at the cap: one warning per interval
# At SIGTERM a connection accepted a moment ago may have its first request still on the
# wire: closing it as idle would leave that client with an end-of-file and no way to know
# whether its request was taken. Such a connection gets this long to send it.
NEW_CONNECTION_GRACE_S = 2.0
SHUTDOWN_MARGIN_S = 10.0  # a process's shutdown after its connections: watcher 2 s,
# shadow calls 3 s, flush 5 s
ORPHAN_CHECK_S = 1.0  # how often a forked server process checks its supervisor is alive


class Server:
    """A listening socket, its connections and the gateway they serve."""

    def __init__(self, gateway: Gateway, loop: asyncio.AbstractEventLoop) -> None:
        self.gateway = gateway
        self.door = gateway.door
        self.loop = loop
        self.clock = Clock()
        self.connections: set[Connection] = set()
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
        answer = error_answer(503, "too many open connections")
        transport.write(encode(answer, content_type_line(JSON), self.clock.line(), CLOSE))
        transport.close()

    def http_figures(self) -> HttpFigures:
        """This process's connection figures for ``/metrics``."""
        return HttpFigures(len(self.connections), self.refused, self.heads_refused,
                           dict(self.timed_out))  # fmt: skip

    async def listen(self, host: str, port: int, *, backlog: int, reuse_port: bool) -> None:
        """Bind the socket; connections are accepted only from ``start``."""
        self._listener = await self.loop.create_server(
            lambda: Connection(self),
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
        deadline = now + timeout
        grace_ends: float | None = now + min(NEW_CONNECTION_GRACE_S, timeout)
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
    settings: Settings,
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
    gateway = factory(settings)
    server = Server(gateway, loop)
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


def _run_process(
    factory: GatewayFactory, settings: Settings, host: str, port: int, **options: Any
) -> int:
    """Run ``_serve_gateway`` on a fresh event loop (uvloop when importable)."""
    with asyncio.Runner(loop_factory=_new_event_loop) as runner:
        return runner.run(_serve_gateway(factory, settings, host, port, **options))


def _configure_logging(level: str) -> None:
    """Log to stderr at ``level`` unless logging is set up already."""
    value = logging.getLevelName(level.upper())
    logging.basicConfig(
        level=value if isinstance(value, int) else logging.INFO,
        format="%(levelname)s:     %(name)s: %(message)s",
    )


def serve(
    factory: GatewayFactory,
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int = 1,
    backlog: int = 2048,
    graceful_timeout: float = 10.0,
) -> int:
    """Serve the gateway ``factory`` builds from ``settings`` (once per process) until
    SIGTERM/SIGINT.

    With ``workers > 1`` each forked process gets ``settings`` naming the run's
    metrics directory (``gateway/prefork.py``), where they publish their figures.

    Returns the exit code: 0 after a clean stop, 1 when the port cannot be
    bound, ``STARTUP_FAILURE`` (3) when the gateway does not start.
    """
    _configure_logging(settings.log_level)
    options: dict[str, Any] = {"backlog": backlog, "graceful_timeout": graceful_timeout}
    if workers <= 1:
        return _run_process(factory, settings, host, port, reuse_port=False, **options)
    parent = os.getpid()

    def run(each: Settings) -> int:
        return _run_process(factory, each, host, port, reuse_port=True, parent=parent, **options)

    return serve_forked(
        run,
        settings,
        host=host,
        port=port,
        workers=workers,
        kill_after=graceful_timeout + SHUTDOWN_MARGIN_S,
    )
