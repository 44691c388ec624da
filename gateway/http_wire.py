"""HTTP/1.1 as bytes for abgate's own server: a request as parsed, a response as written.

A response leaves in ONE ``transport.write`` (status line, headers and body):
``encode`` builds it. ``Request`` is what the protocol (``gateway/http_protocol.py``)
collects from httptools' callbacks for one request, its body read in full.
"""

from __future__ import annotations

import time
import urllib.parse
from email.utils import formatdate
from http import HTTPStatus

import httptools

from gateway.hotpath import Answer

__all__ = [
    "CLOSE",
    "CONTINUE",
    "INTERNAL_ERROR",
    "KEEP_ALIVE",
    "REFUSED",
    "TEXT",
    "Clock",
    "Headers",
    "Request",
    "content_type_line",
    "encode",
    "split_url",
    "status_line",
]

Headers = list[tuple[bytes, bytes]]

_STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}
_CONTENT_TYPE_LINES: dict[bytes, bytes] = {}
TEXT = b"content-type: text/plain; charset=utf-8\r\n"
CLOSE = b"connection: close\r\n"
KEEP_ALIVE = b"connection: keep-alive\r\n"
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
INTERNAL_ERROR = Answer(500, b"Internal Server Error", [])  # as uvicorn answers a failed app


# --- responses ---------------------------------------------------------------------


def status_line(status: int) -> bytes:
    """``HTTP/1.1 <status> <phrase>`` and its line end."""
    line = _STATUS_LINES.get(status)
    return line if line is not None else b"HTTP/1.1 %d \r\n" % status


def content_type_line(content_type: bytes) -> bytes:
    """The ``content-type`` header line of ``content_type`` (made once per type)."""
    line = _CONTENT_TYPE_LINES.get(content_type)
    if line is None:
        line = _CONTENT_TYPE_LINES[content_type] = b"content-type: %s\r\n" % content_type
    return line


def encode(
    answer: Answer, content_type: bytes, date: bytes, connection: bytes, head: bool = False
) -> bytes:
    """Status line, headers and body of one response, ready for a single write.

    ``content_type``: its header line. ``head``: the answer to a HEAD request, the
    GET's headers (its length too) and no body.
    """
    body = answer.body
    parts = [status_line(answer.status), content_type, b"content-length: %d\r\n" % len(body)]
    for name, value in answer.headers:
        parts.append(b"%s: %s\r\n" % (name, value))
    parts += (date, connection, b"\r\n", b"" if head else body)
    return b"".join(parts)


class Clock:
    """The ``date`` header line, formatted at most once a second."""

    __slots__ = ("_line", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._line = b""

    def line(self) -> bytes:
        """The ``date`` header line of now."""
        now = int(time.time())
        if now != self._second:
            self._second = now
            self._line = b"date: %s\r\n" % formatdate(now, usegmt=True).encode()
        return self._line


# --- requests ----------------------------------------------------------------------


class Request:
    """One parsed request (its body read in full)."""

    __slots__ = (
        "body",
        "expect_continue",
        "head_size",
        "headers",
        "http_version",
        "keep_alive",
        "method",
        "queued",
        "size",
        "too_large",
        "url",
    )

    def __init__(self) -> None:
        self.url = b""
        self.head_size = 0
        self.headers: Headers = []
        self.body: list[bytes] = []
        self.size = 0
        self.too_large = False
        self.expect_continue = False
        self.queued = False
        self.method = b""
        self.http_version = "1.1"
        self.keep_alive = True

    def content(self) -> bytes:
        """The request body."""
        body = self.body
        return body[0] if len(body) == 1 else b"".join(body)

    def content_length(self) -> int | None:
        """The declared Content-Length, if any and numeric."""
        for name, value in self.headers:
            if name == b"content-length" and value.isdigit():
                return int(value)
        return None


REFUSED = Request()  # queued in place of a request refused while parsing (its answer kept)


def split_url(url: bytes) -> tuple[str, bytes, bytes]:
    """(path, raw_path, query_string) of a request target, as uvicorn reads them."""
    parsed = httptools.parse_url(url)
    raw_path: bytes = parsed.path or b""
    path = raw_path.decode("ascii")
    if "%" in path:
        path = urllib.parse.unquote(path)
    return path, raw_path, parsed.query or b""
