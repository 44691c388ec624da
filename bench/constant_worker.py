"""A constant-time model worker for benchmarks: the same answer, as fast as Python can give it.

It speaks just enough HTTP/1.1 for wrk, nginx and the gateway: ``httptools``
parses requests (bodies are read in full, pipelining and keep-alive work), the
answers are prebuilt bytes with ``Content-Length``, and the loop is uvloop when
importable. No framework, no JSON parsing: the worker must never be the
bottleneck of a gateway benchmark (it serves well over 20k req/s on one core).

    python -m bench.constant_worker --port 8101 --version v1 [--delay-ms 50]

``POST /predict`` answers ``{"prediction": 1, "probability": [0.3, 0.7],
"status": "success", "model": "demo", "model_version": VERSION}``; ``GET /health``
and ``GET /ready`` answer ``{"status": "ready"}``; anything else is a 404 (405
for a wrong method on a known path).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Mapping
from typing import cast

import httptools
import orjson

__all__ = ["ConstantHttp", "build_routes", "serve"]

Routes = dict[tuple[bytes, bytes], bytes]


def _response(status: str, body: Mapping[str, object], keep_alive: bool) -> bytes:
    payload = orjson.dumps(body)
    connection = b"keep-alive" if keep_alive else b"close"
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\nconnection: "
    ).encode()
    return head + connection + b"\r\n\r\n" + payload


def build_routes(version: str, model: str = "demo") -> dict[bool, Routes]:
    """Prebuilt answers by keep-alive, then by (method, path); the key ``(b"", b"")`` is 404."""
    predict = {
        "prediction": 1,
        "probability": [0.3, 0.7],
        "status": "success",
        "model": model,
        "model_version": version,
    }
    ready, error = {"status": "ready"}, {"status": "error"}
    answers: dict[tuple[bytes, bytes], Mapping[str, object]] = {
        (b"POST", b"/predict"): predict,
        (b"GET", b"/health"): ready,
        (b"GET", b"/ready"): ready,
    }
    routes: dict[bool, Routes] = {}
    for keep in (True, False):
        table = {key: _response("200 OK", body, keep) for key, body in answers.items()}
        wrong_method = _response("405 Method Not Allowed", error, keep)
        table.update({(b"", path): wrong_method for _, path in answers})
        table[(b"", b"")] = _response("404 Not Found", error, keep)
        routes[keep] = table
    return routes


class ConstantHttp(asyncio.Protocol):
    """One connection: httptools calls back into this object, answers are written whole.

    With ``delay_s`` every answer leaves that long after its request (a slow model
    that costs no CPU: a shadow to mirror to in benchmarks).
    """

    __slots__ = ("_delay_s", "_parser", "_path", "_routes", "_transport")

    def __init__(self, routes: dict[bool, Routes], delay_s: float = 0.0) -> None:
        self._routes = routes
        self._delay_s = delay_s
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._path = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                self._transport.close()

    # httptools callbacks (the body is consumed by the parser; nothing keeps it).
    def on_url(self, url: bytes) -> None:
        self._path += url

    def on_message_complete(self) -> None:
        path = self._path.split(b"?", 1)[0]
        self._path = b""
        keep = self._parser.should_keep_alive()
        routes = self._routes[keep]
        method = self._parser.get_method()
        answer = routes.get((method, path)) or routes.get((b"", path)) or routes[(b"", b"")]
        if (transport := self._transport) is not None:
            if self._delay_s:
                asyncio.get_running_loop().call_later(self._delay_s, _send, transport, answer, keep)
            else:
                _send(transport, answer, keep)


def _send(transport: asyncio.Transport, answer: bytes, keep: bool) -> None:
    if transport.is_closing():
        return
    transport.write(answer)
    if not keep:
        transport.close()


async def serve(port: int, version: str, host: str = "127.0.0.1", delay_s: float = 0.0) -> None:
    """Serve until SIGINT/SIGTERM."""
    loop = asyncio.get_running_loop()
    routes = build_routes(version)
    server = await loop.create_server(
        lambda: ConstantHttp(routes, delay_s), host, port, backlog=4096
    )
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--version", default="v1", help="model_version in every answer")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer this much later")
    args = parser.parse_args()
    server = serve(args.port, args.version, args.host, args.delay_ms / 1000.0)
    try:
        import uvloop
    except ImportError:
        asyncio.run(server)
    else:
        uvloop.run(server)


if __name__ == "__main__":
    main()
