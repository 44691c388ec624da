"""Request ids: drawn for a request that names none, checked when a client names one."""

from __future__ import annotations

import os
import re

__all__ = ["new_request_id", "valid_outcome_id", "valid_request_id"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# What feedback names: a request id, or row i of a call of several rows, "<id>.<i>"
# (gateway/protocols.py), so a request id of 128 characters keeps room for the row.
_OUTCOME_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}(\.[0-9]{1,9})?")

BAD_REQUEST_ID = "X-Request-ID must be 1-128 characters of A-Z a-z 0-9 . _ : -"


class _RequestIds:
    """Random 96-bit request ids, drawn from the OS a few hundred at a time.

    They must be unguessable (feedback is joined on them) and unique across
    processes, so they come from ``os.urandom``, but one ``getrandom`` system
    call per request is a measurable share of the hot path. The buffer is
    dropped in a forked child, which must never reuse its parent's bytes.
    """

    _CHUNK = 12 * 340

    def __init__(self) -> None:
        self._bytes = b""
        self._at = 0

    def reset(self) -> None:
        self._bytes, self._at = b"", 0

    def new(self) -> str:
        at = self._at
        if at + 12 > len(self._bytes):
            self._bytes, at = os.urandom(self._CHUNK), 0
        self._at = at + 12
        return self._bytes[at : at + 12].hex()


_request_ids = _RequestIds()
os.register_at_fork(after_in_child=_request_ids.reset)

new_request_id = _request_ids.new
"""A fresh random request id."""


def valid_request_id(value: str) -> bool:
    """Request ids are echoed in headers and logs: only safe characters pass."""
    return _REQUEST_ID.fullmatch(value) is not None


def valid_outcome_id(value: str) -> bool:
    """A request id, or one with a row suffix ``.<i>``: what feedback may name."""
    return _OUTCOME_ID.fullmatch(value) is not None
