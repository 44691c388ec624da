"""Admin API under ``/admin`` (FastAPI), plus the OpenAPI docs of the whole gateway.

Every change goes through the store as a new config version with an audit
entry (time, actor, action, reason, evidence) and reaches every gateway replica
over pub/sub. The bearer token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request, Security
from fastapi.responses import PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from core.api_docs import install_api_docs
from core.errors import Forbidden, NotFound, RedisUnavailable, Unauthorized
from core.http import error_responses, install_error_handlers
from core.logs import fields
from core.settings import Settings
from core.store import AsyncStore
from experiments import changes
from gateway.dashboard import create_dashboard_router
from gateway.live import LiveExperiment, LiveExperiments
from recorded.drift import load_experiment_drift_async

__all__ = ["create_admin_app"]

log = logging.getLogger("abgate.admin")


class WeightsChange(BaseModel):
    """New weights (percent, summing to 100) for the named variants."""

    weights: dict[str, float]
    reason: str = Field(default="", max_length=500)


class Reason(BaseModel):
    """Why an operator made a change (goes to the audit log)."""

    reason: str = Field(default="", max_length=500)


class Promotion(BaseModel):
    """Which variant becomes the champion."""

    variant: str
    reason: str = Field(default="", max_length=500)


# The scheme in the OpenAPI document (Swagger UI's Authorize button). auto_error=False:
# the answers to a missing or wrong token stay this module's 403/401 and error body.
_ADMIN_BEARER = HTTPBearer(
    auto_error=False,
    scheme_name="adminToken",
    description="The gateway's ABGATE_ADMIN_TOKEN, sent as `Authorization: Bearer <token>`.",
)

_REQUEST_ID = r"^[A-Za-z0-9._:\-]{1,128}$"


class PredictBody(BaseModel):
    """The classic predict request."""

    features: list[float] = Field(
        min_length=1, description="Feature values in the model's order (as many as it takes)."
    )


class PredictAnswer(BaseModel):
    """The classic predict answer plus routing facts."""

    prediction: int
    probability: list[float]
    status: str = "success"
    variant: str
    model_version: str
    request_id: str


class FeedbackBody(BaseModel):
    """A delayed outcome for a served request: exactly one of label, reward, value."""

    request_id: str = Field(pattern=_REQUEST_ID, description="The id a predict answer gave.")
    label: float | None = None
    reward: float | None = None
    value: float | None = None
    experiment: str | None = None


class FeedbackAccepted(BaseModel):
    """202: kept, and counted once the request's mapping (or Redis) is there."""

    status: str = "accepted"
    request_id: str
    experiment: str
    metric: str
    waiting: str = Field(description="`waiting for its request` or `waiting for Redis`")
    repeated: bool = Field(
        default=False,
        description="Present (true) when this very feedback was taken before: kept once.",
    )


def _public_routes(app: FastAPI) -> None:
    # The front door (gateway/front_door.py) answers these before FastAPI sees them;
    # they are declared here only so that /openapi.json and /docs describe the whole
    # gateway (tests/gateway/test_front_door.py checks each is the front door's).
    public = APIRouter(tags=["public"])
    errors = error_responses(400, 404, 413, 503, 504)

    @public.post("/predict", response_model=PredictAnswer, responses=errors)
    async def predict(body: PredictBody) -> Any:
        """Route one prediction to a variant (headers X-Request-ID, X-Variant, X-Model-Version)."""

    @public.post("/v1/{model}/predict", response_model=PredictAnswer, responses=errors)
    async def predict_model(model: str, body: PredictBody) -> Any:
        """Route one prediction of ``model`` when several models are served."""

    accepted: dict[int | str, dict[str, Any]] = {
        202: {"model": FeedbackAccepted, "description": "Kept until its request is known."}
    }

    @public.post("/feedback", responses={**accepted, **errors, **error_responses(409)})
    async def feedback(body: FeedbackBody) -> Any:
        """Join a delayed outcome to the variant that served the request: 200 counted,
        202 kept until the request's mapping (or Redis) is there (docs/gateway.md)."""

    @public.get("/health")
    async def health() -> Any:
        """Liveness."""

    @public.get("/ready", responses={503: {"description": "Not ready; the same body says why."}})
    async def ready() -> Any:
        """Readiness: configs, champion reachability, Redis and recording state."""

    @public.get("/metrics", response_class=PlainTextResponse)
    async def metrics() -> Any:
        """Prometheus text format."""

    app.include_router(public)


def create_admin_app(
    settings: Settings, store: AsyncStore | None, experiments: LiveExperiments
) -> FastAPI:
    """The FastAPI app behind every path the front door does not answer.

    Changes go to ``store`` (None: a gateway without Redis, which refuses them)
    and are installed in ``experiments``, this process's routed experiments.
    """
    app = FastAPI(
        title="abgate gateway",
        version="0.1.0",
        description="A/B and canary routing for ML models. Admin endpoints need a bearer token.",
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    install_api_docs(app)
    _public_routes(app)

    def actor(
        request: Request,
        bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_ADMIN_BEARER)],
        x_abgate_actor: str | None = Header(default=None),
    ) -> str:
        token = settings.admin_token
        if not token:
            raise Forbidden("admin API is disabled: set ABGATE_ADMIN_TOKEN to turn it on")
        given = bearer.credentials if bearer is not None else ""  # no or another scheme
        if not hmac.compare_digest(given.encode(), token.encode()):
            # Who tried and where; never what they sent.
            client = request.client.host if request.client else None
            log.warning(
                "admin request refused: missing or wrong bearer token",
                extra=fields(method=request.method, path=request.url.path, client=client),
            )
            raise Unauthorized("missing or wrong bearer token")
        return (x_abgate_actor or "admin")[:64]

    admin = APIRouter(
        prefix="/admin",
        tags=["admin"],
        responses=error_responses(400, 401, 403, 404, 409, 413, 503),
    )

    def stored() -> AsyncStore:
        if store is None:
            raise RedisUnavailable("this gateway runs without Redis; changes need it")
        return store

    def live(name: str) -> LiveExperiment:
        found = experiments.by_name.get(name)
        if found is None:
            raise NotFound(f"no experiment named {name!r}")
        return found

    async def apply(name: str, config: Any, who: str, action: str, reason: str,
                    evidence: Any = None, paused: bool = False) -> dict[str, Any]:  # fmt: skip
        version = await stored().put_config(
            name, config.model_dump(mode="json"), actor=who, action=action, reason=reason,
            evidence=evidence, paused=paused,
        )  # fmt: skip
        experiments.install(config, version, paused=paused)
        return {"status": "success", "experiment": name, "version": version, "action": action}

    @admin.get("/experiments")
    async def list_experiments(who: str = Depends(actor)) -> dict[str, Any]:
        """Every routed experiment with its version, weights and state."""
        return {
            "experiments": [
                {
                    "name": name,
                    "version": e.version,
                    "paused": e.paused,
                    "model": e.config.model,
                    # False: it would shadow another experiment on its model (see the log).
                    "routed": name not in experiments.unrouted,
                    "weights": {v.name: v.weight for v in e.config.variants},
                }
                for name, e in sorted(experiments.by_name.items())
            ]
        }

    async def drift(name: str) -> dict[str, Any]:
        return (await load_experiment_drift_async(stored(), name, live(name).config)).as_dict()

    @admin.get("/experiments/{name}")
    async def get_experiment(name: str, who: str = Depends(actor)) -> dict[str, Any]:
        """The routed config of one experiment, with its data drift (null without Redis)."""
        e = live(name)
        try:
            drift_now = await drift(name) if store is not None else None
        except RedisUnavailable:
            drift_now = None
        return {
            "name": name,
            "version": e.version,
            "paused": e.paused,
            "config": e.config.model_dump(mode="json"),
            "drift": drift_now,
        }

    @admin.get("/experiments/{name}/drift")
    async def get_drift(name: str, who: str = Depends(actor)) -> dict[str, Any]:
        """Per variant and feature (and predictions): PSI, chi-square p-value, alert flag."""
        return await drift(name)

    @admin.put("/experiments/{name}/weights")
    async def set_weights(name: str, change: WeightsChange, request: Request,
                          who: str = Depends(actor)) -> dict[str, Any]:  # fmt: skip
        """Set variant weights (validated: known variants, sum 100)."""
        e = live(name)
        config = changes.set_weights(e.config, change.weights)
        return await apply(name, config, who, "set_weights", change.reason,
                           {"weights": change.weights}, paused=e.paused)  # fmt: skip

    @admin.post("/experiments/{name}/pause")
    async def pause(name: str, body: Reason, who: str = Depends(actor)) -> dict[str, Any]:
        """Send all traffic to the champion; recording goes on."""
        e = live(name)
        return await apply(name, e.config, who, "pause", body.reason, paused=True)

    @admin.post("/experiments/{name}/resume")
    async def resume(name: str, body: Reason, who: str = Depends(actor)) -> dict[str, Any]:
        """Route by the configured weights again."""
        e = live(name)
        return await apply(name, e.config, who, "resume", body.reason, paused=False)

    @admin.post("/experiments/{name}/promote")
    async def promote(name: str, body: Promotion, who: str = Depends(actor)) -> dict[str, Any]:
        """Make ``variant`` the champion with 100 % of traffic."""
        e = live(name)
        config = changes.promote(e.config, body.variant)
        return await apply(name, config, who, "promote", body.reason, {"variant": body.variant})

    @admin.post("/experiments/{name}/rollback")
    async def rollback(name: str, body: Reason, who: str = Depends(actor)) -> dict[str, Any]:
        """Every non-champion variant to 0 %, the champion to 100 %."""
        e = live(name)
        config = changes.rollback(e.config)
        return await apply(name, config, who, "rollback", body.reason, paused=e.paused)

    @admin.get("/experiments/{name}/audit")
    async def audit(name: str, who: str = Depends(actor)) -> dict[str, Any]:
        """The audit log, oldest first."""
        live(name)
        return {"experiment": name, "entries": await stored().audit(name)}

    app.include_router(admin)
    app.include_router(create_dashboard_router(settings, store, experiments))
    return app
