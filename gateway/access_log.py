"""The gateway's access log: a sampled record per request, and every failure.

The hot path draws one random number per request (``AccessLog.rate >
random()``) before anything is built, so a request that is not sampled costs
that comparison and nothing else. A failed upstream call is logged whatever
the draw (once, here, where the hot path handles it). Records never carry
headers, the admin token or request bodies; ``log_payloads`` adds the features
for debugging only.
"""

from __future__ import annotations

import logging
from typing import Any

from core.logs import FIELDS
from core.tracing import Trace
from gateway.forwarded import TrustedProxies

__all__ = ["AccessLog"]

log = logging.getLogger("abgate.access")


def _ids(trace: Trace, request_id: str | None) -> dict[str, Any]:
    """What follows one request across processes: its id and its trace."""
    return {
        "request_id": request_id,
        "trace_id": trace.trace_id,
        "span_id": trace.span_id,
        "parent_id": trace.parent_id,
        "sampled": trace.sampled,
    }


class AccessLog:
    """Writes access records for the share ``rate`` of requests (failures: all of them)."""

    __slots__ = ("payloads", "proxies", "rate")

    def __init__(
        self, rate: float, *, payloads: bool = False, proxies: TrustedProxies | None = None
    ) -> None:
        # With INFO off, no sampled record could be written: do not draw them.
        self.rate = rate if log.isEnabledFor(logging.INFO) else 0.0
        self.payloads = payloads
        self.proxies = proxies or TrustedProxies()

    def client(self, peer: str | None, headers: dict[bytes, bytes]) -> str | None:
        """The client's address for a record: the peer's, or, when the peer is a trusted
        proxy, the one it reports in ``X-Forwarded-For`` (``gateway/forwarded.py``)."""
        if not self.proxies:
            return peer
        return self.proxies.client(peer, headers.get(b"x-forwarded-for"))

    def request(
        self,
        trace: Trace,
        request_id: str,
        *,
        experiment: str,
        variant: str,
        assigned: str,
        model_version: str,
        endpoint: str,
        status: int,
        latency_ms: float,
        fallback: bool,
        error: str | None,
        shadows: dict[str, str] | None,
        features: Any = None,
        client: str | None = None,
    ) -> None:
        """One routed request: who served it, how, how fast (ERROR for a 5xx answer)."""
        values: dict[str, Any] = {
            **_ids(trace, request_id),
            "client": client,
            "experiment": experiment,
            "variant": variant,
            "assigned_variant": assigned,
            "model_version": model_version,
            "endpoint": endpoint,
            "status": status,
            "latency_ms": round(latency_ms, 3),
            "fallback": fallback,
            "error": error,
            "shadows": shadows or {},
        }
        if self.payloads:
            values["features"] = features
        if status >= 500:
            level = logging.ERROR
        elif error is not None:
            level = logging.WARNING  # the assigned variant failed; the fallback answered
        else:
            level = logging.INFO
        log.log(level, "predict", extra={FIELDS: values})

    def rejected(
        self,
        trace: Trace,
        request_id: str | None,
        status: int,
        message: str,
        body: bytes,
        client: str | None = None,
    ) -> None:
        """A request answered with an error before it reached a worker."""
        values: dict[str, Any] = {
            **_ids(trace, request_id),
            "client": client,
            "status": status,
            "error": message,
        }
        if self.payloads:
            values["body"] = body[:1024].decode(errors="replace")
        log.log(logging.ERROR if status >= 500 else logging.INFO, "predict", extra={FIELDS: values})

    def shadow(
        self,
        trace: Trace,
        request_id: str,
        *,
        experiment: str,
        shadow: str,
        endpoint: str,
        ok: bool,
        agreed: bool | None,
        latency_ms: float,
        error: str | None,
    ) -> None:
        """How a mirrored call went (WARNING when it failed)."""
        values = {
            "request_id": request_id,
            "trace_id": trace.trace_id,
            "span_id": trace.span_id,
            "experiment": experiment,
            "shadow": shadow,
            "endpoint": endpoint,
            "ok": ok,
            "agreed": agreed,
            "latency_ms": round(latency_ms, 3),
            "error": error,
        }
        log.log(logging.INFO if ok else logging.WARNING, "shadow", extra={FIELDS: values})
