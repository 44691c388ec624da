"""What one gateway server process counts, as plain data, and how several add up.

Under ``abgate gateway --workers N`` the kernel hands each connection, scrapes of
``/metrics`` included, to any of the N processes. So that every scrape shows
the whole gateway, each process publishes its raw figures (the recorder's
additive stats fields, not rendered metrics) and the process that answers a
scrape adds them up with ``combine``. Adding raw fields rather than finished
metrics keeps derived figures right: a drift PSI or a shadow agreement ratio is
computed once, on the counts of every process together.

Counters of a process that has exited stay in the sum (so a restarted process
does not make a counter go down); its gauges (open connections, memory, queued
outcomes) leave it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["HttpFigures", "ProcessFigures", "ResourceFigures", "combine"]


@dataclass
class HttpFigures:
    """The connection figures of abgate's own HTTP server (absent under uvicorn)."""

    open_connections: int = 0  # gauge
    refused: int = 0
    heads_refused: int = 0
    timed_out: dict[str, int] = field(default_factory=dict)  # by kind: head, body, write


@dataclass
class ResourceFigures:
    """CPU, memory and file descriptors, as ``process_*`` metrics report them."""

    cpu_seconds: float = 0.0  # counter
    resident_bytes: float = 0.0
    virtual_bytes: float = 0.0
    open_fds: float = 0.0
    max_fds: float = 0.0
    start_time: float = 0.0  # seconds since the epoch


@dataclass
class ProcessFigures:
    """One process's counters and gauges since it started."""

    pid: int
    # Raw stats-hash fields per experiment (requests, errors, latency buckets, drift
    # bins, shadow agreement): every one of them adds up across processes.
    outcomes: dict[str, dict[str, float]] = field(default_factory=dict)
    feedback: dict[str, dict[str, int]] = field(default_factory=dict)  # experiment -> result
    feedback_expired: dict[str, int] = field(default_factory=dict)
    feedback_pending: dict[str, int] = field(default_factory=dict)  # read from Redis: max
    shadow_dropped: int = 0
    dropped_outcomes: int = 0
    flush_failures: int = 0
    pending_outcomes: int = 0  # gauge
    feedback_waiting: int = 0  # gauge
    last_flush: float = 0.0  # epoch seconds of the last write to Redis
    http: HttpFigures | None = None
    resources: ResourceFigures | None = None
    alive: bool = True

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ProcessFigures:
        """Read the figures back from their JSON (written with ``orjson.dumps(figures)``)."""
        values = dict(data)
        http, resources = values.pop("http", None), values.pop("resources", None)
        return cls(
            **values,
            http=HttpFigures(**http) if http is not None else None,
            resources=ResourceFigures(**resources) if resources is not None else None,
        )


def _add_nested(
    parts: Iterable[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for part in parts:
        for name, fields in part.items():
            target = out.setdefault(name, {})
            for key, amount in fields.items():
                target[key] = target.get(key, 0) + amount
    return out


def _add_flat(parts: Iterable[Mapping[str, float]]) -> dict[str, float]:
    out: dict[str, float] = {}
    for part in parts:
        for key, amount in part.items():
            out[key] = out.get(key, 0) + amount
    return out


def _combine_http(parts: Sequence[ProcessFigures]) -> HttpFigures | None:
    servers = [p for p in parts if p.http is not None]
    if not servers:
        return None
    return HttpFigures(
        open_connections=sum(p.http.open_connections for p in servers if p.http and p.alive),
        refused=sum(p.http.refused for p in servers if p.http),
        heads_refused=sum(p.http.heads_refused for p in servers if p.http),
        timed_out={
            k: int(v) for k, v in _add_flat(p.http.timed_out for p in servers if p.http).items()
        },
    )


def _combine_resources(parts: Sequence[ProcessFigures]) -> ResourceFigures | None:
    measured = [(p.alive, p.resources) for p in parts if p.resources is not None]
    if not measured:
        return None
    live = [r for alive, r in measured if alive]
    return ResourceFigures(
        cpu_seconds=sum(r.cpu_seconds for _, r in measured),
        resident_bytes=sum(r.resident_bytes for r in live),
        virtual_bytes=sum(r.virtual_bytes for r in live),
        open_fds=sum(r.open_fds for r in live),
        max_fds=min((r.max_fds for r in live), default=0.0),
        start_time=min(r.start_time for _, r in measured),
    )


def combine(parts: Sequence[ProcessFigures], pid: int) -> ProcessFigures:
    """The figures of a whole gateway from those of its processes (``pid``: the result's).

    Counters add over every process that ever ran; gauges over the live ones.
    ``feedback_pending`` is read from Redis by each process (every replica's
    parked feedback): the largest reading, not the sum. ``last_flush`` is the
    oldest of the live processes', so the recording lag is the worst one.
    """
    live = [p for p in parts if p.alive]
    pending: dict[str, int] = {}
    for p in live:
        for name, count in p.feedback_pending.items():
            pending[name] = max(pending.get(name, 0), count)
    return ProcessFigures(
        pid=pid,
        outcomes=_add_nested(p.outcomes for p in parts),
        feedback={
            name: {k: int(v) for k, v in results.items()}
            for name, results in _add_nested(p.feedback for p in parts).items()
        },
        feedback_expired={
            k: int(v) for k, v in _add_flat(p.feedback_expired for p in parts).items()
        },
        feedback_pending=pending,
        shadow_dropped=sum(p.shadow_dropped for p in parts),
        dropped_outcomes=sum(p.dropped_outcomes for p in parts),
        flush_failures=sum(p.flush_failures for p in parts),
        pending_outcomes=sum(p.pending_outcomes for p in live),
        feedback_waiting=sum(p.feedback_waiting for p in live),
        last_flush=min((p.last_flush for p in live), default=0.0),
        http=_combine_http(parts),
        resources=_combine_resources(parts),
    )
