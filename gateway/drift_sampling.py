"""What the hot path needs to sample a request for drift: bin edges and field names.

Built once per config version from the training references stored in Redis
(``abgate apply`` / ``abgate up`` copy them there from the model registry, so
gateways need no access to the registry). The hot path then only runs
``bisect`` on the already-parsed features and adds 1 to pre-built field names.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.schema import drift_class_field, drift_feature_field, drift_score_field

if TYPE_CHECKING:
    from experiments.config import ExperimentConfig

__all__ = ["DriftSampler", "VariantBins", "sample_every", "variant_bins"]


def sample_every(rate: float) -> int:
    """1-in-N sampling for ``rate`` (0: never). A counter is cheaper than a random draw,
    and request order carries no information about the features, so it samples fairly."""
    if rate <= 0:
        return 0
    return max(1, round(1.0 / rate))


@dataclass(frozen=True, slots=True)
class VariantBins:
    """Reference bins of one variant's model version, with their stats field names."""

    edges: tuple[tuple[float, ...], ...]
    feature_fields: tuple[tuple[str, ...], ...]
    class_fields: dict[int, str]
    score_edges: tuple[float, ...] | None
    score_fields: tuple[str, ...]

    def fields_for(self, features: list[Any], answer: dict[str, Any]) -> list[str]:
        """The stats fields one sampled request adds 1 to."""
        out = [
            fields[bisect.bisect_right(edges, value)]
            for edges, fields, value in zip(self.edges, self.feature_fields, features, strict=False)
        ]
        prediction = answer.get("prediction")
        field = self.class_fields.get(prediction) if type(prediction) is int else None
        if field is not None:
            out.append(field)
        probability = answer.get("probability")
        if self.score_edges is not None and type(probability) is list and probability:
            score = probability[-1]
            if type(score) is float or type(score) is int:
                out.append(self.score_fields[bisect.bisect_right(self.score_edges, score)])
        return out


def _bins(variant: str, version: str, reference: Mapping[str, Any]) -> VariantBins:
    edges = tuple(tuple(float(e) for e in f["edges"]) for f in reference.get("features") or ())
    feature_fields = tuple(
        tuple(drift_feature_field(variant, version, i, b) for b in range(len(e) + 1))
        for i, e in enumerate(edges)
    )
    predictions = reference.get("predictions") or {}
    score_edges = predictions.get("score_edges")
    score = tuple(float(e) for e in score_edges) if score_edges is not None else None
    return VariantBins(
        edges=edges,
        feature_fields=feature_fields,
        class_fields={
            int(c): drift_class_field(variant, version, int(c))
            for c in predictions.get("classes", ())
        },
        score_edges=score,
        score_fields=tuple(
            drift_score_field(variant, version, b) for b in range(len(score or ()) + 1)
        ),
    )


def variant_bins(
    config: ExperimentConfig, references: Mapping[str, Any]
) -> dict[str, VariantBins] | None:
    """Bins of each live variant whose model version has a stored reference (None: none has)."""
    out = {}
    for variant in config.variants:
        reference = references.get(variant.model_version)
        if reference:
            out[variant.name] = _bins(variant.name, variant.model_version, reference)
    return out or None


class DriftSampler:
    """Which answered requests of this process are sampled for drift: one in ``every``."""

    __slots__ = ("_countdown", "every")

    def __init__(self, rate: float) -> None:
        self.every = sample_every(rate)
        self._countdown = self.every

    def due(self) -> bool:
        """Count one answered request; True for each ``every``-th (never with rate 0)."""
        if not self.every:
            return False
        self._countdown -= 1
        if self._countdown > 0:
            return False
        self._countdown = self.every
        return True
