"""The assign step: a request's unit, and the variant of its experiment that serves it.

No I/O: the unit comes from the request (a header, a JSON field, or its id)
and the variant from the pure hash of ``gateway/assignment.py``, unless the
experiment is paused, the unit is outside every namespace (a holdout: the
champion serves it) or an override header forces one.
"""

from __future__ import annotations

from typing import Any

from gateway.live import LiveExperiment, Target

__all__ = ["assign", "recorded_unit", "unit_of"]


def unit_of(
    live: LiveExperiment, payload: dict[str, Any], headers: dict[bytes, bytes], request_id: str
) -> str:
    """The unit ``live`` assigns by; the request itself (its id) when the request names none."""
    if live.unit_source == "header":
        value = headers.get(live.unit_name.encode())
        if not value:
            return request_id
        try:  # an app sends its user id as UTF-8: hash that id, as its GrowthBook SDK does
            return value.decode()
        except UnicodeDecodeError:  # not UTF-8: the bytes as they came
            return value.decode("latin-1")
    if live.unit_source == "json_field":
        value = payload.get(live.unit_name)
        return str(value) if type(value) in (str, int) else request_id
    return request_id


def assign(live: LiveExperiment, unit: str, headers: dict[bytes, bytes], holdout: bool) -> Target:
    """The variant that serves ``unit`` (the champion while paused, and for a holdout)."""
    if live.paused or holdout:
        return live.champion
    forced = None
    if live.override_header is not None:
        raw = headers.get(live.override_header.encode())
        forced = raw.decode("latin-1") if raw else None
    return live.targets[live.assigner.assign(unit, forced).name]


def recorded_unit(live: LiveExperiment, unit: str, request_id: str) -> str | None:
    """The unit as recorded: per-unit statistics need it, unless it is the request; a
    request that named none (``unit_of`` fell back to its id) is a unit of its own: ""."""
    if live.unit_source == "request_id":
        return None
    return "" if unit is request_id else unit
