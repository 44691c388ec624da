"""The four paired counts of a shadow against the live model, and their difference."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from analysis.sufficient import FloatArray, MetricStats
from analysis.sufficient.validation import whole_count

__all__ = ["NO_DISCORDANT", "PairedCounts", "paired_difference"]

NO_DISCORDANT = "no request on which only one of the two models was right: no evidence either way"


@dataclass(frozen=True)
class PairedCounts:
    """One shadow against the live model over the same labelled requests.

    ``both``: both answers right; ``live_only``: only the live answer right;
    ``shadow_only``: only the shadow's right; ``neither``: both wrong. Counts
    from several windows or gateway replicas add with ``+``.
    """

    both: int
    live_only: int
    shadow_only: int
    neither: int

    def __post_init__(self) -> None:
        for name in ("both", "live_only", "shadow_only", "neither"):
            object.__setattr__(self, name, whole_count(name, getattr(self, name)))

    @classmethod
    def from_outcomes(
        cls, live_right: Iterable[bool], shadow_right: Iterable[bool]
    ) -> PairedCounts:
        """Counts of per-request outcomes (for tests, imports and small batches)."""
        live = np.fromiter(live_right, dtype=bool)
        shadow = np.fromiter(shadow_right, dtype=bool)
        if live.shape != shadow.shape:
            raise ValueError(
                f"live_right and shadow_right differ in length: {live.size} vs {shadow.size}"
            )
        return cls(
            both=int(np.sum(live & shadow)),
            live_only=int(np.sum(live & ~shadow)),
            shadow_only=int(np.sum(~live & shadow)),
            neither=int(np.sum(~live & ~shadow)),
        )

    @property
    def n(self) -> int:
        """Labelled requests scored for both models."""
        return self.both + self.live_only + self.shadow_only + self.neither

    @property
    def discordant(self) -> int:
        """Requests on which exactly one of the two models was right."""
        return self.live_only + self.shadow_only

    @property
    def live_accuracy(self) -> float:
        """Share of requests the live model got right; 0 when there are none."""
        return (self.both + self.live_only) / self.n if self.n else 0.0

    @property
    def shadow_accuracy(self) -> float:
        """Share of requests the shadow got right; 0 when there are none."""
        return (self.both + self.shadow_only) / self.n if self.n else 0.0

    @property
    def differences(self) -> MetricStats:
        """Sufficient statistics of d = shadow right − live right, per request."""
        return MetricStats(
            n=self.n,
            sum=float(self.shadow_only - self.live_only),
            sum_squares=float(self.discordant),
        )

    def __add__(self, other: PairedCounts) -> PairedCounts:
        if not isinstance(other, PairedCounts):
            return NotImplemented
        return PairedCounts(
            both=self.both + other.both,
            live_only=self.live_only + other.live_only,
            shadow_only=self.shadow_only + other.shadow_only,
            neither=self.neither + other.neither,
        )


def paired_difference(
    live_only: npt.ArrayLike, shadow_only: npt.ArrayLike, n: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Accuracy difference shadow − live and its variance, element-wise (NaN where n = 0).

    ((s + l) − (s − l)²/n)/n²: the variance of the mean of the per-request
    differences d ∈ {−1, 0, 1}, with the 1/n (maximum-likelihood) variance of d.
    """
    s = np.asarray(shadow_only, dtype=np.float64)
    lo = np.asarray(live_only, dtype=np.float64)
    size = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = (s - lo) / size
        variance = ((s + lo) - (s - lo) ** 2 / size) / size**2
    return estimate, np.maximum(variance, 0.0)
