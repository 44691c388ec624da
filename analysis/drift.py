"""Data drift: do live inputs and predictions still look like the training data?

The gateway samples requests into histograms binned by the reference quantile
edges stored with each model version at training time. Here, on those counts
alone, each feature (and the predicted classes and scores) is compared with
its reference shares:

- PSI (population stability index), ``Σ (live − ref) · ln(live / ref)`` over
  the bins, with both shares floored at ``PSI_FLOOR`` so an empty bin gives a
  large but finite value. The usual reading: < 0.1 stable, 0.1–0.2 a moderate
  shift, > 0.2 a significant one, hence the default alert threshold 0.2.
- A chi-square goodness-of-fit test of the live counts against the reference
  shares (the p-value grows meaningless as n grows: with enough traffic any
  shift is significant, which is why the alert is on PSI, an effect size).

An alert needs ``min_samples`` sampled requests: below ~200 samples the PSI of
ten bins is mostly noise (its expectation under no drift is about bins/n).
Pure numpy; no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from analysis._distributions import chi2_sf

__all__ = [
    "DEFAULT_MIN_SAMPLES",
    "DEFAULT_PSI_THRESHOLD",
    "PSI_FLOOR",
    "DriftCounts",
    "DriftResult",
    "ExperimentDrift",
    "FeatureReference",
    "VariantDrift",
    "VariantReference",
    "chi_square",
    "compare",
    "experiment_drift",
    "population_stability_index",
]

DEFAULT_PSI_THRESHOLD = 0.2
"""PSI above which a feature counts as drifted (the common industry cut-off)."""

DEFAULT_MIN_SAMPLES = 200
"""Sampled requests per variant before a drift alert can fire."""

PSI_FLOOR = 1e-4
"""Smallest share used in PSI and as an expected share, so empty bins stay finite."""

Kind = Literal["feature", "prediction_class", "prediction_score"]


@dataclass(frozen=True)
class FeatureReference:
    """Bins of one feature in the training data: inner edges and the share per bin.

    ``len(proportions) == len(edges) + 1``: the outer bins are open-ended, and a
    value ``x`` falls in bin ``bisect_right(edges, x)``.
    """

    feature: str
    edges: tuple[float, ...]
    proportions: tuple[float, ...]


@dataclass(frozen=True)
class VariantReference:
    """What a model version saw in training: its features and its predictions."""

    model_version: str
    features: tuple[FeatureReference, ...]
    classes: tuple[int, ...] = ()
    class_proportions: tuple[float, ...] = ()
    score: FeatureReference | None = None

    @classmethod
    def from_json(cls, model_version: str, data: Mapping[str, Any]) -> VariantReference:
        """From the stored form: ``{"features": [...], "predictions": {...} | None}``."""
        features = tuple(
            FeatureReference(
                str(f["feature"]),
                tuple(float(e) for e in f["edges"]),
                tuple(float(p) for p in f["proportions"]),
            )
            for f in data.get("features") or ()
        )
        predictions = data.get("predictions") or {}
        score = None
        if predictions.get("score_edges") is not None:
            score = FeatureReference(
                "score",
                tuple(float(e) for e in predictions["score_edges"]),
                tuple(float(p) for p in predictions["score_proportions"]),
            )
        return cls(
            model_version=model_version,
            features=features,
            classes=tuple(int(c) for c in predictions.get("classes", ())),
            class_proportions=tuple(float(p) for p in predictions.get("class_proportions", ())),
            score=score,
        )


@dataclass
class DriftCounts:
    """Sampled live counts of one variant, in the reference's bins."""

    features: dict[int, list[int]] = field(default_factory=dict)  # feature index -> bin counts
    classes: dict[int, int] = field(default_factory=dict)  # predicted class -> count
    scores: dict[int, int] = field(default_factory=dict)  # score bin -> count

    @property
    def samples(self) -> int:
        """Sampled requests (every sample counts once per feature)."""
        return max((sum(c) for c in self.features.values()), default=0)


@dataclass(frozen=True)
class DriftResult:
    """One feature (or the predictions) of one variant against its reference."""

    name: str
    kind: Kind
    n: int
    psi: float
    statistic: float
    p_value: float
    dof: int
    alert: bool
    checked: bool
    live: tuple[float, ...]
    reference: tuple[float, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (shares rounded)."""
        return {
            "name": self.name,
            "kind": self.kind,
            "n": self.n,
            "psi": round(self.psi, 6),
            "chi_square": round(self.statistic, 6),
            "p_value": self.p_value,
            "dof": self.dof,
            "alert": self.alert,
            "checked": self.checked,
            "live": [round(x, 6) for x in self.live],
            "reference": [round(x, 6) for x in self.reference],
        }


@dataclass(frozen=True)
class VariantDrift:
    """Every drift check of one variant."""

    variant: str
    model_version: str
    samples: int
    features: tuple[DriftResult, ...]
    predictions: tuple[DriftResult, ...]

    @property
    def alerts(self) -> tuple[DriftResult, ...]:
        """The checks over the threshold, features first."""
        return tuple(r for r in (*self.features, *self.predictions) if r.alert)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "variant": self.variant,
            "model_version": self.model_version,
            "samples": self.samples,
            "alert": bool(self.alerts),
            "features": [r.as_dict() for r in self.features],
            "predictions": [r.as_dict() for r in self.predictions],
        }


@dataclass(frozen=True)
class ExperimentDrift:
    """Drift of every variant of one experiment, with the rule that raised alerts."""

    experiment: str
    threshold: float
    min_samples: int
    variants: tuple[VariantDrift, ...]
    lookback_s: float | None = None  # the period the samples come from (None: not stated)

    @property
    def alerts(self) -> tuple[tuple[str, DriftResult], ...]:
        """(variant, check) for every alert."""
        return tuple((v.variant, r) for v in self.variants for r in v.alerts)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the admin API and the JSON report carry)."""
        return {
            "experiment": self.experiment,
            "psi_threshold": self.threshold,
            "min_samples": self.min_samples,
            "lookback_s": self.lookback_s,
            "alert": bool(self.alerts),
            "alerts": [
                {"variant": v, "name": r.name, "kind": r.kind, "psi": round(r.psi, 6)}
                for v, r in self.alerts
            ],
            "variants": [v.as_dict() for v in self.variants],
        }


def _shares(values: Sequence[float]) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    total = array.sum()
    return array / total if total > 0 else np.zeros_like(array)


def population_stability_index(
    observed: Sequence[float], reference: Sequence[float], *, floor: float = PSI_FLOOR
) -> float:
    """PSI of observed counts against reference shares (same bins, same order)."""
    if len(observed) != len(reference):
        raise ValueError(f"{len(observed)} observed bins against {len(reference)} reference bins")
    live = np.maximum(_shares(observed), floor)
    ref = np.maximum(_shares(reference), floor)
    return float(np.sum((live - ref) * np.log(live / ref)))


def chi_square(
    observed: Sequence[float], reference: Sequence[float], *, floor: float = PSI_FLOOR
) -> tuple[float, float, int]:
    """Goodness-of-fit of observed counts to reference shares: (statistic, p-value, dof).

    Matches ``scipy.stats.chisquare(observed, n * reference)`` when no reference
    share is below ``floor``; smaller shares are raised to ``floor`` (and the
    shares renormalised) so a bin the training data never filled cannot divide by 0.
    """
    counts = np.asarray(observed, dtype=float)
    n = counts.sum()
    dof = len(counts) - 1
    if n <= 0 or dof < 1:
        return 0.0, 1.0, max(dof, 0)
    expected = n * _shares(np.maximum(_shares(reference), floor))
    statistic = float(np.sum((counts - expected) ** 2 / expected))
    return statistic, chi2_sf(statistic, dof), dof


def compare(
    name: str,
    kind: Kind,
    observed: Sequence[float],
    reference: Sequence[float],
    *,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    min_samples: int = DEFAULT_MIN_SAMPLES,
) -> DriftResult:
    """PSI and chi-square of one histogram; an alert when PSI > threshold on enough data."""
    n = int(sum(observed))
    checked = n >= min_samples
    psi = population_stability_index(observed, reference) if n else 0.0
    statistic, p_value, dof = chi_square(observed, reference)
    return DriftResult(
        name=name,
        kind=kind,
        n=n,
        psi=psi,
        statistic=statistic,
        p_value=p_value,
        dof=dof,
        alert=checked and psi > threshold,
        checked=checked,
        live=tuple(float(x) for x in _shares(observed)),
        reference=tuple(float(x) for x in _shares(reference)),
    )


def _variant_drift(
    variant: str,
    reference: VariantReference,
    counts: DriftCounts,
    threshold: float,
    min_samples: int,
) -> VariantDrift:
    def check(
        name: str, kind: Kind, observed: Sequence[float], ref: Sequence[float]
    ) -> DriftResult:
        return compare(name, kind, observed, ref, threshold=threshold, min_samples=min_samples)

    features = []
    for index, feature in enumerate(reference.features):
        observed = list(counts.features.get(index, ()))
        observed += [0] * (len(feature.proportions) - len(observed))
        observed = observed[: len(feature.proportions)]
        features.append(check(feature.feature, "feature", observed, feature.proportions))
    predictions = []
    if reference.classes:
        observed = [counts.classes.get(c, 0) for c in reference.classes]
        predictions.append(
            check("predicted_class", "prediction_class", observed, reference.class_proportions)
        )
    if reference.score is not None:
        bins = len(reference.score.proportions)
        observed = [counts.scores.get(b, 0) for b in range(bins)]
        predictions.append(
            check("prediction_score", "prediction_score", observed, reference.score.proportions)
        )
    return VariantDrift(
        variant=variant,
        model_version=reference.model_version,
        samples=counts.samples,
        features=tuple(features),
        predictions=tuple(predictions),
    )


def experiment_drift(
    experiment: str,
    references: Mapping[str, VariantReference],
    counts: Mapping[str, DriftCounts],
    *,
    threshold: float = DEFAULT_PSI_THRESHOLD,
    min_samples: int = DEFAULT_MIN_SAMPLES,
    lookback_s: float | None = None,
) -> ExperimentDrift:
    """Drift of each variant that has a reference (variant name -> its version's reference)."""
    if not math.isfinite(threshold) or threshold <= 0:
        raise ValueError(f"threshold must be a positive number, got {threshold!r}")
    variants = tuple(
        _variant_drift(name, ref, counts.get(name, DriftCounts()), threshold, min_samples)
        for name, ref in references.items()
    )
    return ExperimentDrift(experiment, threshold, min_samples, variants, lookback_s)
