"""The respond step: the answer the client gets, and its access-log record."""

from __future__ import annotations

from typing import Any

import orjson

from core.errors import UpstreamUnavailable
from core.tracing import Trace
from gateway.access_log import AccessLog
from gateway.answer import Answer, error_answer
from gateway.forward import Forwarded
from gateway.live import LiveExperiment, Target

__all__ = ["answered", "log_request", "unavailable"]


def answered(forwarded: Forwarded, answer: dict[str, Any], request_id: str) -> Answer:
    """The variant's answer, labelled with who served it (``answer`` is changed in place)."""
    served_by = forwarded.served_by
    answer["variant"] = served_by.name
    answer["model_version"] = served_by.model_version
    answer["request_id"] = request_id
    return Answer(
        forwarded.status,
        orjson.dumps(answer),
        [
            (b"x-request-id", request_id.encode()),
            (b"x-variant", served_by.name.encode()),
            (b"x-model-version", served_by.model_version.encode()),
        ],
    )


def unavailable(forwarded: Forwarded, request_id: str) -> Answer:
    """No answer to send back: 504 when the variant timed out, else 503."""
    name = forwarded.served_by.name
    if forwarded.error == "timeout":
        exc = UpstreamUnavailable(f"variant {name} did not answer in time")
        return error_answer(exc, request_id, 504)
    return error_answer(UpstreamUnavailable(f"variant {name} is unavailable ({forwarded.error})"),
                        request_id)  # fmt: skip


def log_request(
    access: AccessLog,
    trace: Trace,
    request_id: str,
    live: LiveExperiment,
    chosen: Target,
    forwarded: Forwarded,
    status: int,
    shadows: dict[str, str] | None,
    payload: dict[str, Any],
    client: str | None,
) -> None:
    """The request's access-log record (sampled, or a failure)."""
    served_by = forwarded.served_by
    access.request(
        trace, request_id, experiment=live.name, variant=served_by.name,
        assigned=chosen.name, model_version=served_by.model_version,
        endpoint=forwarded.upstream.url, status=status, latency_ms=forwarded.latency_ms,
        fallback=forwarded.fallback, error=forwarded.error, shadows=shadows,
        features=payload.get("features"), client=client,
    )  # fmt: skip
