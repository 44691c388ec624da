"""How long what the gateway writes to Redis is kept."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FLUSHED_MEMORY_S", "Lifetimes"]

# How long a flush part's id is remembered: a write whose reply was lost is
# retried within seconds, so a few minutes covers it many times over.
FLUSHED_MEMORY_S = 600


@dataclass(frozen=True)
class Lifetimes:
    """Expiries and lengths of what a flush or a feedback writes (from ``Settings``)."""

    window_ttl_s: int = 30 * 86400  # a window's stats hash
    # A request's mapping, and so how long feedback waits for one.
    request_ttl_s: int = 86400
    # A unit's running counts, after its last request or outcome.
    unit_ttl_s: int = 30 * 86400
    events_maxlen: int = 10_000  # raw event batches kept per experiment (approximately)

    @property
    def mapping_ttl_s(self) -> int:
        """Expiry of an hour's request hash: an hour past the last mapping's wait."""
        return self.request_ttl_s + 3600
