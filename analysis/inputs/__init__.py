"""What the engine analyses: per-variant sufficient statistics, from JSON or the recorder.

The JSON form is what ``abgate analyze FILE.json`` reads. Version 1 (no
``schema_version``) gives each variant's totals; version 2
(``"schema_version": 2``) gives them per epoch, each epoch with the weights it
was routed with (docs/statistics.md). A malformed file raises ``InputError``
naming the field, e.g. ``variants.1.metrics.accuracy.sum_squares: must be >=
sum^2/n``; so does a field the schema does not know (a typo would otherwise be
silently ignored).

The package holds the data model (``experiment``), the readers of single
fields (``fields``) and the two JSON forms (``json_form``, ``json_epochs``).
Import them from here.
"""

from __future__ import annotations

from analysis.inputs.experiment import (
    AnalysisSettings,
    ExperimentData,
    Stats,
    VariantData,
    WindowData,
)
from analysis.inputs.fields import InputError
from analysis.inputs.json_form import SCHEMA_VERSIONS, experiment_from_json

__all__ = [
    "SCHEMA_VERSIONS",
    "AnalysisSettings",
    "ExperimentData",
    "InputError",
    "Stats",
    "VariantData",
    "WindowData",
    "experiment_from_json",
]
