"""The model worker: one model version behind the classic Flask-style predict API.

``POST /predict`` with ``{"features": [...]}`` answers ``{"prediction": int,
"probability": [...], "status": "success", "model_version": ...}``. Bad input
gets a 4xx with ``{"status": "error", "error": ...}``; the model is loaded
once, before the app is built.

Each predict request is logged with the trace id and request id the gateway
sent (``traceparent``, ``X-Request-ID``): every request the gateway sampled
(the sampled flag), every 5xx, and ``ABGATE_ACCESS_LOG_RATE`` of the direct
calls that carry no trace.
"""

from __future__ import annotations

import logging
import time
from random import random
from typing import Annotated, Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field

from core.api_docs import install_api_docs
from core.errors import BadRequest
from core.http import BodySizeLimit, error_responses, install_error_handlers
from core.logs import fields
from core.settings import Settings
from core.tracing import parse_traceparent
from model_workers.runtime import ModelRuntime

__all__ = ["create_worker_app"]

Feature = Annotated[float, Field(strict=True, allow_inf_nan=False)]

log = logging.getLogger("abgate.worker")


class PredictRequest(BaseModel):
    """One row of features."""

    model_config = ConfigDict(extra="ignore")
    features: list[Feature] = Field(description="Feature values, in the model's feature order.")


class BatchRequest(BaseModel):
    """Several rows of features."""

    model_config = ConfigDict(extra="ignore")
    instances: list[list[Feature]] = Field(description="Rows of feature values.")


class PredictResponse(BaseModel):
    """The classic predict answer, plus which model version gave it."""

    prediction: int
    probability: list[float]
    status: str = "success"
    model: str
    model_version: str


class BatchResponse(BaseModel):
    """Predictions for several rows, in request order."""

    predictions: list[int]
    probabilities: list[list[float]]
    status: str = "success"
    model: str
    model_version: str


_ERRORS = error_responses(400, 413)  # and 422, in the one error body (core/http.py)


def _check_width(row: list[float], expected: int, where: str) -> None:
    if len(row) != expected:
        raise BadRequest(f"{where}: expected {expected} features, got {len(row)}")


def create_worker_app(settings: Settings, runtime: ModelRuntime) -> FastAPI:
    """Build the worker app around an already loaded model."""
    app = FastAPI(
        title=f"abgate worker: {runtime.model} {runtime.version}",
        version="0.1.0",
        description="Serves one model version with the classic predict contract.",
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_api_docs(app)
    registry = CollectorRegistry()
    requests_total = Counter(
        "abgate_worker_requests",
        "Predict requests by endpoint and status.",
        ["model", "version", "endpoint", "status"],
        registry=registry,
    )
    latency = Histogram(
        "abgate_worker_predict_duration_seconds",
        "Time spent in the model per request.",
        ["model", "version", "endpoint"],
        registry=registry,
        buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    )
    labels = {"model": runtime.model, "version": runtime.version}

    def log_request(request: Request, status: int, started: float) -> None:
        trace = parse_traceparent(request.headers.get("traceparent"))
        sampled = trace.sampled if trace is not None else settings.access_log_rate > random()
        if not sampled and status < 500:
            return
        log.log(
            logging.ERROR if status >= 500 else logging.INFO,
            "predict",
            extra=fields(
                request_id=(request.headers.get("x-request-id") or "")[:128] or None,
                trace_id=trace.trace_id if trace else None,
                parent_id=trace.parent_id if trace else None,
                model=runtime.model,
                model_version=runtime.version,
                path=request.url.path,
                status=status,
                latency_ms=round((time.perf_counter() - started) * 1000.0, 3),
            ),
        )

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        path = request.url.path
        if path.startswith("/predict"):
            outcome = "success" if response.status_code < 400 else str(response.status_code)
            requests_total.labels(**labels, endpoint=path, status=outcome).inc()
            log_request(request, response.status_code, started)
        request_id = request.headers.get("x-request-id")
        if request_id is not None:
            response.headers["X-Request-ID"] = request_id
        response.headers["X-Model-Version"] = runtime.version
        return response

    @app.post("/predict", response_model=PredictResponse, responses=_ERRORS)
    async def predict(body: PredictRequest) -> PredictResponse:
        """Predict one row."""
        _check_width(body.features, runtime.n_features, "features")
        started = time.perf_counter()
        (result,) = runtime.predict([body.features])
        latency.labels(**labels, endpoint="/predict").observe(time.perf_counter() - started)
        return PredictResponse(
            prediction=result.label,
            probability=result.probability,
            model=runtime.model,
            model_version=runtime.version,
        )

    @app.post("/predict/batch", response_model=BatchResponse, responses=_ERRORS)
    async def predict_batch(body: BatchRequest) -> BatchResponse:
        """Predict several rows at once."""
        if not body.instances:
            raise BadRequest("instances: at least one row is needed")
        if len(body.instances) > settings.max_batch_size:
            raise BadRequest(
                f"instances: at most {settings.max_batch_size} rows, got {len(body.instances)}"
            )
        for index, row in enumerate(body.instances):
            _check_width(row, runtime.n_features, f"instances.{index}")
        started = time.perf_counter()
        results = runtime.predict(body.instances)
        latency.labels(**labels, endpoint="/predict/batch").observe(time.perf_counter() - started)
        return BatchResponse(
            predictions=[r.label for r in results],
            probabilities=[r.probability for r in results],
            model=runtime.model,
            model_version=runtime.version,
        )

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "healthy"}

    @app.get("/ready")
    async def ready() -> dict[str, str]:
        """Readiness: the model is loaded (it is, before the app exists)."""
        return {"status": "ready", "model": runtime.model, "model_version": runtime.version}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        """The registry metadata of the served version."""
        return runtime.metadata

    @app.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
