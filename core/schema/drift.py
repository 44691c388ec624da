"""Drift fields: sampled feature values, predicted classes and scores, binned per
variant and model version, in the stats hashes beside the outcome fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from analysis.drift import DriftCounts
from core.schema.fields import as_number, as_text

__all__ = ["drift_class_field", "drift_feature_field", "drift_score_field", "parse_drift_fields"]

# Drift fields carry the model version as well as the variant: a promotion
# gives a variant another version (and another reference), and its samples
# must not mix with the old version's.


def drift_feature_field(variant: str, version: str, feature: int, bin_index: int) -> str:
    """Stats field counting sampled values of feature ``feature`` in bin ``bin_index``."""
    return f"{variant}:drift:{version}:x:{feature}:{bin_index}"


def drift_class_field(variant: str, version: str, label: int) -> str:
    """Stats field counting sampled answers that predicted class ``label``."""
    return f"{variant}:drift:{version}:class:{label}"


def drift_score_field(variant: str, version: str, bin_index: int) -> str:
    """Stats field counting sampled answers whose score fell in bin ``bin_index``."""
    return f"{variant}:drift:{version}:score:{bin_index}"


def parse_drift_fields(*hashes: Mapping[Any, Any]) -> dict[tuple[str, str], DriftCounts]:
    """The drift counts in stats hashes (summed) by (variant, model version); other fields
    are skipped."""
    out: dict[tuple[str, str], DriftCounts] = {}
    for raw_name, raw_value in (item for fields in hashes for item in fields.items()):
        name = as_text(raw_name)
        variant, _, rest = name.partition(":")
        parts = rest.split(":")
        if parts[0] != "drift" or len(parts) < 4 or "|" in variant:
            continue
        version, kind = parts[1], parts[2]
        try:
            numbers = [int(p) for p in parts[3:]]
            value = int(as_number(raw_value))
        except ValueError:
            continue
        counts = out.setdefault((variant, version), DriftCounts())
        if kind == "x" and len(numbers) == 2 and 0 <= numbers[1] < 1000:
            bins = counts.features.setdefault(numbers[0], [])
            bins += [0] * (numbers[1] + 1 - len(bins))
            bins[numbers[1]] += value
        elif kind == "class" and len(numbers) == 1:
            counts.classes[numbers[0]] = counts.classes.get(numbers[0], 0) + value
        elif kind == "score" and len(numbers) == 1:
            counts.scores[numbers[0]] = counts.scores.get(numbers[0], 0) + value
    return out
