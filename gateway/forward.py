"""The forward step: the request to the assigned variant, to the champion on failure.

A failure the experiment's ``fallback.on`` names (``timeout``, ``connect_error``,
``5xx``) sends the same body to the champion, once; the outcome is still the
assigned variant's (its error, and its latency up to the failure). An answer
that is not a JSON object counts as a ``protocol`` failure of the variant.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from gateway.edges import Upstream
from gateway.live import LiveExperiment, Target
from gateway.upstream import UpstreamError, UpstreamResponse

__all__ = ["Forwarded", "forward_with_fallback"]

_PREDICT_PATH = b"/predict"


class Forwarded:
    """What came back from forwarding one request, and who answered it."""

    __slots__ = ("answer", "client_error", "error", "fallback", "latency_ms", "ok",
                 "prediction", "served_by", "status", "upstream")  # fmt: skip

    def __init__(
        self,
        served_by: Target,
        upstream: Upstream,
        status: int,
        answer: dict[str, Any] | None,
        error: str | None,
        fallback: bool,
        latency_ms: float,
        client_error: bool,
    ) -> None:
        self.served_by = served_by
        """The variant whose answer is sent back: the assigned one, or the champion."""
        self.upstream = upstream
        """The endpoint asked last (for the access log)."""
        self.status = status
        """The answering server's status (0 when none answered)."""
        self.answer = answer
        """The server's answer, a JSON object; None when there is none to send back."""
        self.error = error
        """What failed with the assigned variant: ``timeout``, ``connect_error``, ``5xx``
        or ``protocol``; None when it answered."""
        self.fallback = fallback
        """The champion answered in place of the assigned variant."""
        self.latency_ms = latency_ms
        """The assigned variant's latency (up to its failure, with a fallback)."""
        self.ok = error is None
        """The assigned variant answered (a 4xx included)."""
        self.client_error = client_error
        """The assigned variant refused the request (4xx): the client's error, not its own."""
        self.prediction: Any = answer.get("prediction") if answer is not None else None
        """The answer's ``prediction``, what outcomes and shadows compare."""


async def forward_with_fallback(
    live: LiveExperiment, chosen: Target, body: bytes, headers: bytes
) -> Forwarded:
    """POST ``body`` to ``chosen``'s ``/predict``; to the champion when that fails in a way
    ``live`` falls back on. Never raises: a failure is in what it returns."""
    started = time.perf_counter()
    served_by = chosen
    error: str | None = None
    upstream: Upstream = chosen.endpoints.pick()
    response: UpstreamResponse | None
    try:
        response = await upstream.request(_PREDICT_PATH, body, headers, chosen.timeout_s)
    except UpstreamError as exc:
        error = exc.kind
        response = None
    if response is not None and response.status >= 500:
        error = "5xx"
        response = None
    latency_ms = (time.perf_counter() - started) * 1000.0
    if error == "protocol":
        error = "5xx"  # an answer that is not HTTP counts as a server failure
    fallback = False
    if response is None and chosen is not live.champion and error in live.fallback_on:
        fallback = True
        served_by = champion = live.champion
        upstream = champion.endpoints.pick()
        try:
            response = await upstream.request(_PREDICT_PATH, body, headers, champion.timeout_s)
            if response.status >= 500:
                response = None
        except UpstreamError:
            response = None
    if response is None:
        return Forwarded(served_by, upstream, 0, None, error, fallback, latency_ms, False)
    status = response.status
    # Judged before the body is read: a 4xx whose body is not JSON stays the client's.
    client_error = 400 <= status < 500 and error is None
    try:
        answer = orjson.loads(response.body)
    except orjson.JSONDecodeError:
        answer = None
    if type(answer) is not dict:
        answer, error = None, error or "protocol"
    return Forwarded(served_by, upstream, status, answer, error, fallback, latency_ms, client_error)
