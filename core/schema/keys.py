"""The Redis keys of abgate: every key of an experiment carries its name as a Redis
Cluster hash tag, so an experiment's scripts and pipelines stay in one slot::

    abgate:{demo}:config            current config (JSON)   :config_version  INCR counter
    abgate:{demo}:epochs            hash: config version -> epoch record (JSON)
    abgate:{demo}:stats:total       hash: all-time stats fields (``core.schema.fields``)
    abgate:{demo}:stats:<start>     hash: the same fields for one time window
    abgate:{demo}:windows           sorted set of window starts
    abgate:{demo}:requests:<hour>   hash: request id -> served mapping (``core.schema.served``)
    abgate:{demo}:feedback:<id>     the feedback claim of one request id (exactly once)
    abgate:{demo}:pending_feedback  hash: request id -> feedback waiting for its mapping
    abgate:{demo}:pending_feedback_due   sorted set: request id -> when it expires
    abgate:{demo}:feedback_joins    hash: parked, joined, expired (all-time counts)
    abgate:{demo}:unit:<unit id>    hash: one unit's running counts (``core.schema.fields``);
                                    expires
    abgate:{demo}:flushed           sorted set: flush parts applied lately (each at most once)
    abgate:{demo}:events            stream: batches of raw events (``core.store.flush``)
    abgate:{demo}:audit             stream: config changes and ramp decisions
    abgate:{demo}:drift_reference   drift references by model version (JSON)
    abgate:{demo}:ramp              the ramp state (JSON)    :ramp_lock  its lock's owner

Two names are global, never used in a script or pipeline with an experiment's
keys (in a cluster they live on another node): the index of experiments and the
channel config changes are published on.
"""

from __future__ import annotations

__all__ = ["CONFIG_CHANNEL", "EXPERIMENTS_KEY", "Keys"]

CONFIG_CHANNEL = "abgate:config"
"""Pub/sub channel: ``<experiment> <version>`` for every stored config."""

EXPERIMENTS_KEY = "abgate:experiments"
"""Set of the names of every stored experiment."""


class Keys:
    """Key templates of one experiment, all in the ``{name}`` hash slot."""

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment
        self.base = f"abgate:{{{experiment}}}"

    config = property(lambda self: f"{self.base}:config")
    config_version = property(lambda self: f"{self.base}:config_version")
    epochs = property(lambda self: f"{self.base}:epochs")
    totals = property(lambda self: f"{self.base}:stats:total")
    windows = property(lambda self: f"{self.base}:windows")
    events = property(lambda self: f"{self.base}:events")
    audit = property(lambda self: f"{self.base}:audit")

    drift_reference = property(lambda self: f"{self.base}:drift_reference")
    ramp = property(lambda self: f"{self.base}:ramp")
    ramp_lock = property(lambda self: f"{self.base}:ramp_lock")

    def window(self, start: int) -> str:
        """Stats hash of the window starting at ``start``."""
        return f"{self.base}:stats:{start}"

    def requests(self, hour: int) -> str:
        """request id -> served mapping, for the hour the request was served."""
        return f"{self.base}:requests:{hour}"

    def feedback_claim(self, request_id: str) -> str:
        """Set once the feedback of ``request_id`` is counted or parked (value: its token)."""
        return f"{self.base}:feedback:{request_id}"

    # Not under ``feedback:``: a request id may be any safe string, "pending" too.
    pending_feedback = property(lambda self: f"{self.base}:pending_feedback")
    pending_feedback_due = property(lambda self: f"{self.base}:pending_feedback_due")
    feedback_joins = property(lambda self: f"{self.base}:feedback_joins")

    def unit(self, unit_id: str) -> str:
        """The running counts of one unit (a user, say), per epoch, variant and measure."""
        return f"{self.base}:unit:{unit_id}"

    unit_prefix = property(lambda self: f"{self.base}:unit:")

    @property
    def flushed(self) -> str:
        """Parts of recent flushes already applied (sorted set, scored by time)."""
        return f"{self.base}:flushed"
