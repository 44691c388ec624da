"""Epochs: stretches of an experiment during which its routing stayed the same.

Every stored config version opens an epoch: the weights each variant was
routed with (all to the champion while paused) and the model version behind
each variant. Every request and every delayed outcome is counted in the epoch
whose config served the request, so an epoch's counts can be held against its
own weights (sample-ratio check), and a variant whose model version changed is
never one population across the change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from analysis.sufficient import VariantStats

__all__ = ["Epoch", "describe_weights", "routing_spans", "variant_totals"]


def describe_weights(weights: Mapping[str, float]) -> str:
    """``champion 90 % / canary 10 %``: shares of the total, in the given order."""
    total = sum(weights.values())
    if total <= 0:
        return "no weights"
    return " / ".join(f"{name} {100.0 * w / total:.3g} %" for name, w in weights.items())


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S")


@dataclass(frozen=True)
class Epoch:
    """One epoch: its routing and what each variant recorded in it.

    ``version`` is the config version that opened it (0: unknown, for counts
    recorded before epochs were kept or by a gateway that routed a config file
    without Redis). ``weights`` are the weights requests were routed with, None
    when unknown; ``last_version`` is set when consecutive epochs with the same
    routing are read as one.
    """

    version: int
    weights: Mapping[str, float] | None
    model_versions: Mapping[str, str] = field(default_factory=dict)
    paused: bool = False
    start: float | None = None
    end: float | None = None  # None: still open
    variants: Mapping[str, VariantStats] = field(default_factory=dict)
    last_version: int | None = None

    def __post_init__(self) -> None:
        if self.weights is not None:
            for arm, weight in self.weights.items():
                if not (math.isfinite(weight) and weight >= 0.0):
                    raise ValueError(f"weights[{arm!r}] must be a finite number >= 0")

    @property
    def known(self) -> bool:
        """Whether the routing of this epoch is known (its weights were stored)."""
        return self.weights is not None and sum(self.weights.values()) > 0

    def routing(self) -> tuple[tuple[tuple[str, float], ...], tuple[tuple[str, str], ...]]:
        """What requests were routed by: normalised weights and model versions."""
        weights = self.weights or {}
        total = sum(weights.values()) or 1.0
        return (
            tuple(sorted((k, round(v / total, 12)) for k, v in weights.items())),
            tuple(sorted(self.model_versions.items())),
        )

    @property
    def label(self) -> str:
        """How a person finds this epoch: config version(s), time range and weights."""
        if self.version == 0:
            what = "epoch of unknown routing (recorded before epochs were kept)"
        elif self.last_version is not None and self.last_version != self.version:
            what = f"config v{self.version}-v{self.last_version}"
        else:
            what = f"config v{self.version}"
        if self.start is not None:
            end = "now" if self.end is None else _clock(self.end)
            what += f", {_clock(self.start)} to {end} UTC"
        if self.weights is not None:
            what += f", {describe_weights(self.weights)}"
        if self.paused:
            what += " (paused)"
        return what


def variant_totals(
    epochs: Iterable[Epoch], model_versions: Mapping[str, str] | None = None
) -> dict[str, VariantStats]:
    """Each variant's statistics summed over the epochs, one population per model version.

    With ``model_versions`` (variant -> its current version), an epoch counts
    for a variant only when the variant ran that version then (or the version
    is unknown), so a variant whose model changed is read as its new model alone.
    """
    out: dict[str, VariantStats] = {}
    for epoch in epochs:
        for variant, stats in epoch.variants.items():
            wanted = (model_versions or {}).get(variant)
            ran = epoch.model_versions.get(variant)
            if wanted is not None and ran is not None and ran != wanted:
                continue
            out[variant] = out.get(variant, VariantStats()) + stats
    return out


def routing_spans(epochs: Iterable[Epoch]) -> list[Epoch]:
    """Consecutive epochs that routed alike (same shares, same model versions) as one.

    A config change that leaves routing alone (a new alpha, say) still opens an
    epoch; read together, such neighbours give the split check more units.
    """
    spans: list[Epoch] = []
    for epoch in sorted(epochs, key=lambda e: e.version):
        last = spans[-1] if spans else None
        if (
            last is not None
            and last.known
            and epoch.known
            and last.paused == epoch.paused
            and last.routing() == epoch.routing()
        ):
            merged = dict(last.variants)
            for name, stats in epoch.variants.items():
                merged[name] = merged.get(name, VariantStats()) + stats
            spans[-1] = Epoch(
                version=last.version,
                weights=last.weights,
                model_versions=last.model_versions,
                paused=last.paused,
                start=last.start,
                end=epoch.end,
                variants=merged,
                last_version=epoch.last_version or epoch.version,
            )
        else:
            spans.append(epoch)
    return spans
