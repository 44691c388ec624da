"""Commands on stored experiments: a config version (with its epoch and audit entry),
reading it back, the audit log and the index of experiment names."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from core.schema import CONFIG_CHANNEL, EXPERIMENTS_KEY, Keys, epoch_record
from core.store.command import Command, ScriptCall, Steps, call, single
from core.store.scripts import PUT_CONFIG

__all__ = [
    "AUDIT_MAXLEN",
    "ConfigRecord",
    "add_audit",
    "audit",
    "get_config",
    "names",
    "put_config",
    "routing_extras",
]

AUDIT_MAXLEN = 10_000
"""Audit entries kept per experiment (approximately: the stream is trimmed with ``~``)."""


@dataclass(frozen=True)
class ConfigRecord:
    """A stored experiment config with its version and run state."""

    name: str
    version: int
    config: dict[str, Any]
    paused: bool = False
    updated_at: str = ""
    actor: str = ""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "name": self.name,
            "version": self.version,
            "paused": self.paused,
            "updated_at": self.updated_at,
            "actor": self.actor,
            "config": self.config,
        }


def put_config(
    name: str,
    config: dict[str, Any],
    *,
    actor: str,
    action: str,
    reason: str = "",
    evidence: Any = None,
    paused: bool = False,
) -> Command[int]:
    """Store a validated config as the next version, audit it, tell every gateway; the
    version stored."""
    keys = Keys(name)
    now = _now_iso()
    body = orjson.dumps({"config": config, "paused": paused, "updated_at": now, "actor": actor})
    epoch = epoch_record(config, paused=paused, started_at=time.time())
    store = ScriptCall(
        PUT_CONFIG,
        [keys.config_version, keys.config, keys.audit, keys.epochs],
        [body, now, actor, action, reason, json.dumps(evidence, default=str), AUDIT_MAXLEN, epoch],
    )
    return Command(f"cannot store config of {name}", _put_config(name, store))


def _put_config(name: str, store: ScriptCall) -> Steps[int]:
    (version,) = yield [store]
    # The index and the channel are global: single commands, never in a script or
    # pipeline with the experiment's keys (in a cluster they live on another node).
    yield [call("sadd", EXPERIMENTS_KEY, name)]
    yield [call("publish", CONFIG_CHANNEL, f"{name} {int(version)}")]
    return int(version)


def get_config(name: str) -> Command[ConfigRecord | None]:
    """The stored config of ``name``, or None."""
    keys = Keys(name)
    return single(
        f"cannot read config of {name}",
        call("mget", keys.config, keys.config_version),
        lambda reply: _decode_config(name, *reply),
    )


def names() -> Command[list[str]]:
    """Names of every stored experiment, sorted."""
    return single(
        "cannot list experiments",
        call("smembers", EXPERIMENTS_KEY),
        lambda members: sorted(m.decode() for m in members),
    )


def routing_extras(name: str) -> Command[tuple[dict[str, Any], dict[str, Any] | None]]:
    """What a gateway keeps next to a config: drift references and the ramp state."""
    keys = Keys(name)
    return single(
        f"cannot read the drift reference and ramp state of {name}",
        call("mget", keys.drift_reference, keys.ramp),
        lambda reply: (
            {} if reply[0] is None else dict(orjson.loads(reply[0])),
            None if reply[1] is None else dict(orjson.loads(reply[1])),
        ),
    )


def audit(name: str, count: int = 100) -> Command[list[dict[str, Any]]]:
    """The audit log of an experiment (its last ``count`` entries), oldest first."""
    return single(
        f"cannot read the audit log of {name}",
        call("xrevrange", Keys(name).audit, count=count),
        lambda entries: _decode_audit(reversed(entries)),
    )


def add_audit(
    name: str, *, actor: str, action: str, reason: str = "", evidence: Any = None
) -> Command[None]:
    """An audit entry that is not a config change (a ramp decision that holds, say)."""
    entry = {
        "ts": _now_iso(),
        "actor": actor,
        "action": action,
        "reason": reason,
        "evidence": json.dumps(evidence, default=str),
        "version": "",
    }
    return single(
        f"cannot write the audit log of {name}",
        call("xadd", Keys(name).audit, entry, maxlen=AUDIT_MAXLEN, approximate=True),
        lambda _: None,
    )


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _decode_config(name: str, raw: bytes | None, version: bytes | None) -> ConfigRecord | None:
    if raw is None:
        return None
    body = orjson.loads(raw)
    return ConfigRecord(
        name=name,
        version=int(version or 0),
        config=body["config"],
        paused=bool(body.get("paused", False)),
        updated_at=str(body.get("updated_at", "")),
        actor=str(body.get("actor", "")),
    )


def _decode_audit(entries: Iterable[tuple[bytes, dict[bytes, bytes]]]) -> list[dict[str, Any]]:
    out = []
    for entry_id, fields in entries:
        row: dict[str, Any] = {k.decode(): v.decode() for k, v in fields.items()}
        row["id"] = entry_id.decode()
        with contextlib.suppress(ValueError):
            row["evidence"] = json.loads(row.get("evidence", "null"))
        out.append(row)
    return out
