"""The gateway's one front door: its route table, request body limit and error answers.

Both HTTP servers are thin adapters over this module: abgate's own
(``gateway/http_protocol.py``, httptools) and any ASGI server, uvicorn
(``gateway/app.py``). Each asks ``FrontDoor.route`` who answers a request:

- ``POST /predict``, ``POST /v1/{model}/predict``, ``POST /feedback``,
  ``GET /health``, ``GET /ready`` and ``GET /metrics`` (HEAD of these three as
  GET: the server sends the head without the body), and the model servers' own
  paths (``gateway/protocols.py``), are the gateway's own endpoints, plain code
  on the hot path;
- everything else (``/admin``, ``/dashboard``, ``/docs``, ``/openapi.json``,
  other methods) is the FastAPI admin app's (``route`` returns None), or a 404
  when there is none.

A request body over ``body_limit`` gets ``too_large`` (413) on every path, the
admin app's included, under either server. Every error answer has the one
error body of ``core/http.py``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from core.http import BodyLimit, error_json
from gateway.hotpath import Answer
from gateway.protocols import protocol_call

if TYPE_CHECKING:
    from gateway.hotpath import HotPath
    from gateway.metrics import GatewayMetrics
    from gateway.passthrough import Passthrough

__all__ = ["JSON", "METRICS", "FrontDoor", "Headers", "Route", "error_answer"]

Headers = list[tuple[bytes, bytes]]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
# What a route's endpoint is called with: what the path names (a model, a protocol call),
# the request body, its headers (names lower-case) and the address connected from.
Endpoint = Callable[[Any, bytes, Headers, "str | None"], Awaitable[Answer]]

JSON = b"application/json"
METRICS = b"text/plain; version=0.0.4; charset=utf-8"
_HEALTHY = Answer(200, orjson.dumps({"status": "healthy"}), [])


def error_answer(status: int, message: str) -> Answer:
    """An error answer of the gateway: ``status`` and the one JSON error body."""
    return Answer(status, error_json(message), [])


@dataclass(frozen=True, slots=True)
class Route:
    """The endpoint that answers one request, and what its answer is."""

    endpoint: Endpoint
    target: Any = None  # what the path names, passed to the endpoint
    content_type: bytes = JSON
    reads_body: bool = True  # False: the endpoint never looks at the body

    def answer(self, body: bytes, headers: Headers, peer: str | None) -> Awaitable[Answer]:
        """The endpoint's answer to this request."""
        return self.endpoint(self.target, body, headers, peer)


class FrontDoor:
    """The route table, the body limit and the error answers every server goes through.

    ``admin`` (an ASGI app) answers the paths the table does not hold; it may be
    replaced after construction (tests do).
    """

    def __init__(
        self,
        hotpath: HotPath,
        passthrough: Passthrough,
        metrics: GatewayMetrics,
        ready: Callable[[], Awaitable[Answer]],
        *,
        max_body_bytes: int,
        admin: ASGIApp | None = None,
    ) -> None:
        self.hotpath = hotpath
        self.passthrough = passthrough
        self.metrics = metrics
        self.ready = ready
        self.admin = admin
        self.body_limit = BodyLimit(max_body_bytes)
        self.too_large = error_answer(self.body_limit.status, self.body_limit.message)
        # The routes whose path names nothing, made once (not per request).
        self._predict = Route(self._predict_answer)
        self._feedback = Route(self._feedback_answer)
        self._health = Route(self._health_answer, reads_body=False)
        self._ready = Route(self._ready_answer, reads_body=False)
        self._metrics = Route(self._metrics_answer, content_type=METRICS, reads_body=False)
        self._not_found = Route(self._not_found_answer, reads_body=False)

    # --- the route table -------------------------------------------------------

    def route(self, method: bytes, path: str) -> Route | None:
        """Who answers ``method path``: one of the gateway's endpoints, or None for the
        admin app (a 404 route when there is none). ``path`` is percent-decoded."""
        if method == b"POST":
            if path == "/predict":
                return self._predict
            if path == "/feedback":
                return self._feedback
            if path.startswith("/v1/") and path.endswith("/predict"):
                return Route(self._predict_answer, path[4:-8] or None)
        elif method == b"GET" or method == b"HEAD":
            if path == "/health":
                return self._health
            if path == "/ready":
                return self._ready
            if path == "/metrics":
                return self._metrics
        call = protocol_call(method, path)
        if call is not None:
            return Route(self._protocol_answer, call)
        return None if self.admin is not None else self._not_found

    # --- the endpoints ---------------------------------------------------------

    async def _predict_answer(
        self, model: str | None, body: bytes, headers: Headers, peer: str | None
    ) -> Answer:
        return await self.hotpath.predict(body, dict(headers), model, peer)

    async def _feedback_answer(
        self, _: None, body: bytes, headers: Headers, peer: str | None
    ) -> Answer:
        return await self.hotpath.feedback(body)

    async def _health_answer(
        self, _: None, body: bytes, headers: Headers, peer: str | None
    ) -> Answer:
        return _HEALTHY

    async def _ready_answer(
        self, _: None, body: bytes, headers: Headers, peer: str | None
    ) -> Answer:
        return await self.ready()

    async def _metrics_answer(
        self, _: None, body: bytes, headers: Headers, peer: str | None
    ) -> Answer:
        return Answer(200, self.metrics.render(), [])

    async def _protocol_answer(
        self, call: Any, body: bytes, headers: Headers, peer: str | None
    ) -> Answer:
        return await self.passthrough.call(call, body, dict(headers), peer)

    async def _not_found_answer(
        self, _: None, body: bytes, headers: Headers, peer: str | None
    ) -> Answer:
        return error_answer(404, "Not Found")
