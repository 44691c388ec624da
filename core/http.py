"""HTTP edge shared by the gateway and the workers.

One place turns errors into ``{"status": "error", "error": ...}``, so every
endpoint answers user mistakes with a 4xx and a message, never a 500; one
``BodyLimit`` says how large a request body may be and what a larger one gets.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, ClassVar

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from core.errors import AbgateError, PayloadTooLarge

__all__ = [
    "BodyLimit",
    "BodySizeLimit",
    "ErrorAnswer",
    "describe_validation_errors",
    "error_body",
    "error_json",
    "error_responses",
    "install_error_handlers",
]

log = logging.getLogger("abgate.http")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def error_body(message: str) -> dict[str, str]:
    """The JSON body of every error answer."""
    return {"status": "error", "error": message}


def error_json(message: str) -> bytes:
    """The error body as JSON bytes, for code that writes its answers without a framework."""
    return orjson.dumps(error_body(message))


@dataclass(frozen=True, slots=True)
class BodyLimit:
    """The largest request body an HTTP edge takes, and what it says to a larger one."""

    max_bytes: int
    status: ClassVar[int] = PayloadTooLarge.status_code

    def exceeded(self, size: int) -> bool:
        """Whether a body of ``size`` bytes (declared, or read so far) is over the limit."""
        return size > self.max_bytes

    @property
    def message(self) -> str:
        """The error message of the refusal."""
        return f"request body over the limit of {self.max_bytes} bytes"


class ErrorAnswer(BaseModel):
    """Every error answer."""

    status: str = "error"
    error: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for error statuses of a route or router, always with 422.

    422 is listed because the one handler answers validation errors in this
    shape too, not in FastAPI's default ``HTTPValidationError`` one.
    """
    return {code: {"model": ErrorAnswer} for code in (*codes, 422)}


def describe_validation_errors(errors: list[Any]) -> tuple[int, str]:
    """Status and one readable line for pydantic/FastAPI validation errors."""
    parts = []
    for err in errors[:5]:
        if err.get("type") == "json_invalid":
            detail = err.get("ctx", {}).get("error", "invalid JSON")
            return 400, f"malformed JSON body: {detail}"
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        where = ".".join(loc) or "body"
        message = err.get("msg", "invalid")
        if err.get("type") == "missing":
            message = "field required"
        parts.append(f"{where}: {message}")
    more = len(errors) - 5
    return 422, "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def install_error_handlers(app: FastAPI) -> None:
    """Map abgate errors, validation errors and HTTP errors to the error body."""

    @app.exception_handler(AbgateError)
    async def _abgate_error(_: Request, exc: AbgateError) -> JSONResponse:
        if exc.status_code >= 500:
            log.error("%s: %s", type(exc).__name__, exc.message)
        return JSONResponse(error_body(exc.message), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = describe_validation_errors(list(exc.errors()))
        return JSONResponse(error_body(message), status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            error_body(str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )


class BodySizeLimit:
    """ASGI middleware: 413 for a body over ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.limit = BodyLimit(max_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await self._reject(send, 400, "invalid Content-Length header")
                    return
                if self.limit.exceeded(declared):
                    await self._reject(send, self.limit.status, self.limit.message)
                    return
        received = 0
        started = False
        rejected = False

        async def limited_receive() -> Message:
            # Past the limit, answer 413 here and tell the app the client left:
            # raising instead would be turned into a 400 by the framework.
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if self.limit.exceeded(received):
                    rejected = True
                    if not started:
                        await self._reject(send, self.limit.status, self.limit.message)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if rejected:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not rejected:
                raise

    @staticmethod
    async def _reject(send: Send, status: int, message: str) -> None:
        body = error_json(message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
