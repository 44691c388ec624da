"""Commands that read what was recorded (stats hashes, windows, epochs, raw events), and
the two documents kept beside it: the drift references and the ramp state."""

from __future__ import annotations

from typing import Any

import orjson

from core.schema import Keys
from core.store.command import Command, Steps, call, single

__all__ = [
    "clear_ramp_state",
    "drift_reference",
    "epochs",
    "events",
    "put_drift_reference",
    "ramp_state",
    "recent",
    "save_ramp_state",
    "totals",
    "totals_and_epochs",
    "windows",
    "windows_since",
]

StatsFields = dict[bytes, bytes]
"""A stats hash as Redis returns it (``core.schema.decode_stats`` reads it)."""


def totals(name: str) -> Command[StatsFields]:
    """The all-time stats hash of an experiment."""
    return single(f"cannot read the statistics of {name}", call("hgetall", Keys(name).totals), dict)


def totals_and_epochs(name: str) -> Command[tuple[StatsFields, StatsFields]]:
    """The all-time stats hash and the epoch records, read together."""
    return Command(f"cannot read the statistics of {name}", _totals_and_epochs(Keys(name)))


def _totals_and_epochs(keys: Keys) -> Steps[tuple[StatsFields, StatsFields]]:
    totals, epochs = yield [call("hgetall", keys.totals), call("hgetall", keys.epochs)]
    return totals, epochs


def epochs(name: str) -> Command[StatsFields]:
    """The epoch records of an experiment: config version -> routing and start (JSON)."""
    return single(f"cannot read the epochs of {name}", call("hgetall", Keys(name).epochs), dict)


def windows(name: str) -> Command[dict[int, StatsFields]]:
    """Every recorded window's stats hash by its start, oldest first."""
    return Command(f"cannot read the windows of {name}", _windows(Keys(name)))


def _windows(keys: Keys) -> Steps[dict[int, StatsFields]]:
    (recorded,) = yield [call("zrange", keys.windows, 0, -1)]
    starts = [int(w) for w in recorded]
    hashes = yield from _window_hashes(keys, starts)
    return dict(zip(starts, hashes, strict=True))


def windows_since(name: str, since: float) -> Command[list[StatsFields]]:
    """Stats hashes of the windows that started at ``since`` or later, oldest first."""
    return Command(f"cannot read the stats of {name}", _windows_since(Keys(name), since))


def _windows_since(keys: Keys, since: float) -> Steps[list[StatsFields]]:
    (recorded,) = yield [call("zrangebyscore", keys.windows, since, "+inf")]
    return (yield from _window_hashes(keys, [int(w) for w in recorded]))


def recent(
    name: str, last: int
) -> Command[tuple[StatsFields, dict[int, StatsFields], int | None, StatsFields]]:
    """The totals hash, the ``last`` most recent window hashes (oldest first), the start of
    the first window ever kept and the epoch records, in one round trip per part.

    For the live dashboard: its charts need only recent windows, but the time since the
    first one sets the traffic rates of the time-to-decision estimate.
    """
    return Command(f"cannot read the statistics of {name}", _recent(Keys(name), last))


def _recent(
    keys: Keys, last: int
) -> Steps[tuple[StatsFields, dict[int, StatsFields], int | None, StatsFields]]:
    totals, latest, first, epochs = yield [
        call("hgetall", keys.totals),
        call("zrange", keys.windows, -last, -1),
        call("zrange", keys.windows, 0, 0),
        call("hgetall", keys.epochs),
    ]
    starts = [int(w) for w in latest]
    hashes = yield from _window_hashes(keys, starts)
    return totals, dict(zip(starts, hashes, strict=True)), int(first[0]) if first else None, epochs


def _window_hashes(keys: Keys, starts: list[int]) -> Steps[list[StatsFields]]:
    return list((yield [call("hgetall", keys.window(start)) for start in starts]))


def events(name: str, count: int = 100) -> Command[list[dict[str, Any]]]:
    """The most recent raw events (newest last): each flush appends one batch of rows
    under the names of its fields (``flush.EVENT_FIELDS``)."""
    return single(
        f"cannot read the events of {name}",
        call("xrevrange", Keys(name).events, count=count),
        lambda batches: _event_rows(batches)[-count:],
    )


def _event_rows(batches: list[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for _, fields in reversed(batches):
        names = orjson.loads(fields[b"fields"])
        out.extend(dict(zip(names, row, strict=True)) for row in orjson.loads(fields[b"rows"]))
    return out


# --- kept beside the recordings ----------------------------------------------------------


def drift_reference(name: str) -> Command[dict[str, Any]]:
    """The stored drift references of an experiment (model version -> reference; empty when
    none was stored)."""
    return single(
        f"cannot read the drift reference of {name}",
        call("get", Keys(name).drift_reference),
        _json_or_empty,
    )


def put_drift_reference(name: str, references: dict[str, Any]) -> Command[None]:
    """Store the training references (model version -> reference) drift is checked against."""
    return single(
        f"cannot store the drift reference of {name}",
        call("set", Keys(name).drift_reference, orjson.dumps(references)),
        lambda _: None,
    )


def ramp_state(name: str) -> Command[dict[str, Any] | None]:
    """The stored ramp state of an experiment, if any."""
    return single(
        f"cannot read the ramp state of {name}",
        call("get", Keys(name).ramp),
        lambda raw: None if raw is None else dict(orjson.loads(raw)),
    )


def save_ramp_state(name: str, state: dict[str, Any]) -> Command[None]:
    """Store the ramp state (it survives the controller)."""
    return single(
        f"cannot store the ramp state of {name}",
        call("set", Keys(name).ramp, orjson.dumps(state)),
        lambda _: None,
    )


def clear_ramp_state(name: str) -> Command[None]:
    """Forget a finished ramp."""
    return single(
        f"cannot clear the ramp state of {name}", call("delete", Keys(name).ramp), lambda _: None
    )


def _json_or_empty(raw: bytes | None) -> dict[str, Any]:
    return {} if raw is None else dict(orjson.loads(raw))
