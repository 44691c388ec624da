"""The bridge from abgate's own server to an ASGI app: the admin app's requests.

The front door (``gateway/front_door.py``) answers the gateway's own paths;
every other request a connection reads (``/admin``, ``/dashboard``, ``/docs``,
other methods) is handed to the FastAPI admin app here: an ASGI scope built from
the parsed request, ``receive`` giving its body (already read, under the body
limit), ``send`` collecting the response, which leaves in one write as the
front door's answers do.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from gateway.forwarded import TrustedProxies
from gateway.http_wire import (
    CLOSE,
    INTERNAL_ERROR,
    TEXT,
    Headers,
    Request,
    encode,
    status_line,
)

__all__ = ["Exchange", "http_scope", "run_app"]

log = logging.getLogger("abgate.server")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_NO_BODY_STATUSES = frozenset({204, 304})
# Header names are tokens; values carry no control characters but tab (as uvicorn checks).
_BAD_HEADER_NAME = re.compile(b'[\x00-\x20\x7f()<>@,;:\\[\\]={}\t\\\\"/?]')
_BAD_HEADER_VALUE = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")


class Exchange:
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

    async def send(self, message: MutableMapping[str, Any]) -> None:
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

    def response(
        self, scope: Scope, date: bytes, keep_alive: bool, connection: bytes
    ) -> tuple[bytes, bool]:
        """The collected response as bytes, and whether the connection stays open.

        An app that failed or sent no response gets 500; one that sent half a
        response, a closed connection (half of one cannot be completed).
        """
        method, path = scope["method"], scope["path"]
        if not self.complete:
            if self.started:
                return b"", False
            log.error("the admin app sent no response to %s %s", method, path)
            return encode(INTERNAL_ERROR, TEXT, date, connection), keep_alive
        try:
            return self._encode(method == "HEAD", date, keep_alive)
        except RuntimeError:
            log.exception("bad response from the admin app for %s %s", method, path)
            return encode(INTERNAL_ERROR, TEXT, date, CLOSE), False

    def _encode(self, head_only: bool, date: bytes, keep_alive: bool) -> tuple[bytes, bool]:
        body = b"".join(self.chunks)
        if head_only or self.status in _NO_BODY_STATUSES or self.status < 200:
            body = b""
            length_ok = True
        else:
            length_ok = False
        parts = [status_line(self.status)]
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
            parts.append(CLOSE)
        parts += (b"\r\n", body)
        return b"".join(parts), keep_alive


async def run_app(app: ASGIApp, scope: Scope, exchange: Exchange) -> None:
    """Call ``app`` for ``exchange``; a failure is logged (the response stays incomplete)."""
    try:
        await app(scope, exchange.receive, exchange.send)
    except Exception:
        log.exception("exception in the admin app for %s %s", scope["method"], scope["path"])
    finally:
        exchange.finish()


def _forwarded(headers: Headers, name: bytes) -> bytes | None:
    """Every ``name`` field of a request, joined as one list (each proxy may add one)."""
    values = [value for key, value in headers if key == name]
    return b",".join(values) if values else None


def _addresses(transport: asyncio.BaseTransport) -> tuple[Any, Any]:
    """(client, server) for an ASGI scope: host and port, or None when unknown."""

    def pair(info: Any) -> Any:
        return (str(info[0]), int(info[1])) if isinstance(info, tuple) and len(info) >= 2 else None

    return pair(transport.get_extra_info("peername")), pair(transport.get_extra_info("sockname"))


def http_scope(
    request: Request,
    url: tuple[str, bytes, bytes],
    transport: asyncio.BaseTransport,
    peer: str | None,
    proxies: TrustedProxies,
) -> Scope:
    """The ASGI HTTP scope of a request; ``url``: its (path, raw_path, query_string)."""
    path, raw_path, query = url
    client, server = _addresses(transport)
    scheme = "http"
    if proxies.trusts(peer):
        # Behind a trusted proxy: the client and scheme it reports (gateway/forwarded.py).
        found = proxies.client(peer, _forwarded(request.headers, b"x-forwarded-for"))
        if found != peer:
            client = (found, 0)
        proto = _forwarded(request.headers, b"x-forwarded-proto")
        scheme = proxies.scheme(peer, proto, scheme)
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
