"""W3C traceparent parsing and continuation (pure)."""

from __future__ import annotations

import pytest

from core.tracing import continue_trace, parse_traceparent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
VALID = f"00-{TRACE}-{PARENT}-01"


def test_valid_header_is_parsed() -> None:
    parsed = parse_traceparent(VALID)
    assert parsed is not None
    assert (parsed.trace_id, parsed.parent_id, parsed.sampled) == (TRACE, PARENT, True)
    unsampled = parse_traceparent(f"00-{TRACE}-{PARENT}-00".encode())
    assert unsampled is not None and unsampled.sampled is False
    assert parse_traceparent(f"00-{TRACE}-{PARENT}-03").sampled is True  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        VALID.upper(),  # hex must be lower case
        f"00-{TRACE.upper()}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{PARENT}-01",  # version ff is invalid
        f"00-{TRACE}-{PARENT}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE}-{PARENT}-1",
        f"00-{TRACE[:-1]}-{PARENT}-01",
        f"00-{TRACE}x-{PARENT}-01",
        f"0g-{TRACE}-{PARENT}-01",
        f"00_{TRACE}_{PARENT}_01",
        f"cc-{TRACE}-{PARENT}-01x",  # a later version appends fields only after a dash
    ],
)
def test_invalid_header_is_refused(header: str | None) -> None:
    assert parse_traceparent(header) is None


def test_later_version_keeps_the_first_four_fields() -> None:
    parsed = parse_traceparent(f"cc-{TRACE}-{PARENT}-00-what-comes-later")
    assert parsed is not None and parsed.trace_id == TRACE and not parsed.sampled


def test_a_valid_trace_is_continued_with_a_new_span() -> None:
    trace = continue_trace(VALID.encode(), sampled=False)
    assert trace.trace_id == TRACE and trace.parent_id == PARENT
    assert trace.span_id != PARENT and len(trace.span_id) == 16
    # The forwarded header carries our span as the parent, and our sampling choice.
    assert trace.header == f"00-{TRACE}-{trace.span_id}-00".encode()
    forwarded = parse_traceparent(trace.header)
    assert forwarded is not None and forwarded.parent_id == trace.span_id


@pytest.mark.parametrize("incoming", [None, b"garbage", f"00-{'0' * 32}-{PARENT}-01".encode()])
def test_a_missing_or_invalid_trace_starts_a_new_one(incoming: bytes | None) -> None:
    first = continue_trace(incoming, sampled=True)
    second = continue_trace(incoming, sampled=True)
    assert first.parent_id is None
    assert first.trace_id != second.trace_id and first.trace_id != "0" * 32
    parsed = parse_traceparent(first.header)
    assert parsed is not None and parsed.trace_id == first.trace_id and parsed.sampled
