"""What the hot path hands back to the HTTP layer: a status, a body and headers."""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from core.errors import AbgateError

__all__ = ["Answer", "error_answer"]


@dataclass(slots=True)
class Answer:
    """What the ASGI layer sends back."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


def error_answer(
    exc: AbgateError, request_id: str | None = None, status: int | None = None
) -> Answer:
    """The JSON error answer to ``exc`` (at ``status`` when given), echoing the request id."""
    headers = [(b"x-request-id", request_id.encode())] if request_id else []
    body = orjson.dumps({"status": "error", "error": exc.message})
    return Answer(status or exc.status_code, body, headers)
