"""What the hot path hands back to the HTTP layer: a status, a body and headers."""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import AbgateError
from core.http import error_json

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
    return Answer(status or exc.status_code, error_json(exc.message), headers)
