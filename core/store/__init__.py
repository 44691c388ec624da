"""The one package that talks to Redis: its scripts, its commands and the two clients.

Key names and the encoding of what is stored live in ``core.schema`` (pure); this
package owns what is done with them:

    lua/ , scripts   the Lua scripts (each file says what it does, its KEYS and ARGV)
    command          how a command is written once: its calls per round trip and how
                     their replies read, no I/O
    experiments      config versions, epochs opened, the audit log, the index
    recordings       stats hashes, windows, epochs and raw events read back; the drift
                     references and the ramp state kept beside them
    flush            what a gateway process writes every flush, each part at most once
    feedback         delayed feedback counted exactly once, parked, expired
    lifetimes        how long what the gateway writes is kept
    sync_client      ``Store``: the CLI, analysis and the ramp controller
    async_client     ``AsyncStore``: the gateway, off the request path

Both clients run the same commands; neither writes a key or a reply's decoding itself.
Every key of an experiment carries the experiment name as a Redis Cluster hash tag
(``abgate:{name}:...``), so an experiment's scripts and pipelines stay in one slot.

Redis Cluster (``cluster=True``, from ``ABGATE_REDIS_CLUSTER``): the one global key (the
experiments index set) and the config channel are used by single commands only, never
inside a script or pipeline with an experiment's keys; PUBLISH is broadcast over the
cluster bus, so the listener subscribes on any one node and moves to the next one when
that node fails.
"""

from __future__ import annotations

from core.schema import CONFIG_CHANNEL, EXPERIMENTS_KEY, Keys
from core.store.async_client import AsyncStore
from core.store.experiments import AUDIT_MAXLEN, ConfigRecord
from core.store.feedback import FeedbackItem, FeedbackJoins, FeedbackResult
from core.store.flush import EVENT_FIELDS, UNITS_PER_PART, Event, FlushBatch
from core.store.lifetimes import FLUSHED_MEMORY_S, Lifetimes
from core.store.sync_client import Store

__all__ = [
    "AUDIT_MAXLEN",
    "CONFIG_CHANNEL",
    "EVENT_FIELDS",
    "EXPERIMENTS_KEY",
    "FLUSHED_MEMORY_S",
    "UNITS_PER_PART",
    "AsyncStore",
    "ConfigRecord",
    "Event",
    "FeedbackItem",
    "FeedbackJoins",
    "FeedbackResult",
    "FlushBatch",
    "Keys",
    "Lifetimes",
    "Store",
]
