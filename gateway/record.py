"""The record step: one request's outcome into the recorder's in-process buffer.

Nothing here is awaited and nothing does I/O: the recorder's flusher takes
the buffer to Redis off the request path (``gateway/recorder.py``).
"""

from __future__ import annotations

from typing import Any

from gateway.assign import recorded_unit
from gateway.drift_sampling import DriftSampler, VariantBins
from gateway.forward import Forwarded
from gateway.live import LiveExperiment, Target
from gateway.recorder import Recorder

__all__ = ["record_drift_sample", "record_outcome"]


def record_outcome(
    recorder: Recorder,
    live: LiveExperiment,
    chosen: Target,
    unit: str,
    request_id: str,
    forwarded: Forwarded,
    ts: float,
) -> None:
    """Record the request as the outcome of ``chosen``, the variant it was assigned."""
    client_error = forwarded.client_error
    recorder.record_request(
        live.name, chosen.name, chosen.model_version, live.version,
        ok=forwarded.ok and not client_error, client_error=client_error,
        latency_ms=forwarded.latency_ms, fallback=forwarded.fallback, request_id=request_id,
        prediction=forwarded.prediction, error=forwarded.error, ts=ts,
        unit=recorded_unit(live, unit, request_id),
    )  # fmt: skip


def record_drift_sample(
    recorder: Recorder,
    sampler: DriftSampler,
    drift: dict[str, VariantBins],
    experiment: str,
    variant: str,
    features: list[Any],
    answer: dict[str, Any],
    ts: float,
) -> None:
    """Count an answered request for drift when it is the sampler's turn."""
    if sampler.due():
        bins = drift.get(variant)
        if bins is not None:
            recorder.record_drift(experiment, bins.fields_for(features, answer), ts)
