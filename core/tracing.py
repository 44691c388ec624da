"""W3C Trace Context (``traceparent``): follow one request across gateway and workers.

The gateway continues a valid incoming trace (or starts one), gives its own
hop a new span id, and forwards ``traceparent: 00-<trace-id>-<span-id>-<flags>``
to the worker, which logs the same trace id. A malformed header is not an
error for the client: the spec says to start a new trace, and so we do.

The sampled flag the gateway forwards says whether it wrote an access-log
record for the request ("the caller may have recorded trace data", as the spec
defines the flag), so a worker logs exactly the requests the gateway logged.

Pure: no I/O, ids from ``random.getrandbits`` (reseeded after ``fork``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from random import getrandbits

__all__ = ["Trace", "TraceParent", "continue_trace", "parse_traceparent"]

# version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex only.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A valid incoming ``traceparent``."""

    trace_id: str
    parent_id: str
    sampled: bool


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The parsed header, or None when absent or invalid (the caller starts a new trace).

    Version ``00`` is exactly 55 characters. A later version may append fields
    after a ``-``, which are ignored (the spec's forward compatibility);
    version ``ff``, upper-case hex and all-zero ids are invalid.
    """
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1")
    value = value.strip(" \t")
    match = _TRACEPARENT.match(value)
    if match is None:
        return None
    version, trace_id, parent_id, flags = match.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    if len(value) != 55 and (version == "00" or value[55] != "-"):
        return None
    return TraceParent(trace_id, parent_id, bool(int(flags, 16) & 1))


@dataclass(slots=True)
class Trace:
    """This hop of a trace: the trace id, the caller's span, our span, our sampling choice."""

    trace_id: str
    span_id: str
    parent_id: str | None
    sampled: bool

    @property
    def header(self) -> bytes:
        """The ``traceparent`` value to send downstream (our span is the parent there)."""
        return b"00-%s-%s-%s" % (
            self.trace_id.encode(),
            self.span_id.encode(),
            b"01" if self.sampled else b"00",
        )


def _span_id() -> str:
    return f"{getrandbits(64) or 1:016x}"


def continue_trace(incoming: str | bytes | None, sampled: bool) -> Trace:
    """Continue the trace in a valid ``incoming`` header, else start a new one."""
    parent = parse_traceparent(incoming) if incoming is not None else None
    if parent is not None:
        return Trace(parent.trace_id, _span_id(), parent.parent_id, sampled)
    # One draw for both ids: this runs on every request without a trace.
    ids = f"{getrandbits(192):048x}"
    trace_id, span_id = ids[:32], ids[32:]
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:  # never, in practice; invalid if so
        return continue_trace(None, sampled)
    return Trace(trace_id, span_id, None, sampled)
