"""The live dashboard at ``/dashboard``: one static page that polls ``/dashboard/data``.

Read-only. When an admin token is set, the data needs it: the page asks for
it once (a login form, or ``?token=`` in a link) and keeps a session cookie
(HttpOnly, SameSite=Strict) that holds an HMAC of the token rather than the
token itself, so every replica can check it without shared session state and
the browser never stores the admin secret. Scripts may send the bearer token
instead. The page, its script and its stylesheet ship inside the package: no
CDN, so it works on a machine without internet.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse

from core.errors import BadRequest, Forbidden, NotFound, RedisUnavailable, Unauthorized
from core.http import error_responses
from core.schema import decode_epochs, decode_stats
from core.settings import Settings
from core.store import AsyncStore
from gateway.dashboard_data import AUDIT_ROWS, CHART_WINDOWS, dashboard_payload, drift_rows
from gateway.exposure import is_loopback
from gateway.live import LiveExperiments
from recorded.drift import load_experiment_drift_async

__all__ = ["SESSION_COOKIE", "create_dashboard_router"]

SESSION_COOKIE = "abgate_dashboard"
_ASSETS = {
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
# Everything comes from this origin; the token in a ?token= link never leaks as a referrer.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_MAX_LOGIN_BYTES = 4096


def _asset(name: str) -> bytes:
    return (resources.files("gateway") / "static" / name).read_bytes()


def _session_value(token: str) -> str:
    return hmac.new(token.encode(), b"abgate dashboard session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return secrets.compare_digest(given.encode(), expected.encode())


def create_dashboard_router(
    settings: Settings, store: AsyncStore | None, experiments: LiveExperiments
) -> APIRouter:
    """Routes of the dashboard: the page, its two assets, login/logout and the data.

    The data is read from ``store`` (None: a gateway without Redis, nothing to
    show) for the experiments this process routes (``experiments``).
    """
    router = APIRouter(tags=["dashboard"], responses=error_responses(400, 401, 403, 404, 503))
    page = _asset("dashboard.html")
    assets = {name: _asset(name) for name in _ASSETS}

    def signed_in(request: Request) -> bool:
        token = settings.admin_token
        if not token:
            return is_loopback(settings.host)  # open without a token on loopback only
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie and _same(cookie, _session_value(token)):
            return True
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and _same(given.strip(), token)

    def with_session(response: Response, request: Request) -> Response:
        assert settings.admin_token is not None
        response.set_cookie(
            SESSION_COOKIE,
            _session_value(settings.admin_token),
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/dashboard",
        )
        return response

    @router.get("/dashboard", include_in_schema=False)
    async def dashboard(request: Request, token: str | None = None) -> Response:
        """The page; a valid ``?token=`` becomes the session cookie and leaves the URL."""
        if token is not None and settings.admin_token:
            if not _same(token, settings.admin_token):
                return Response(page, status_code=401, media_type="text/html", headers=_HEADERS)
            redirect = RedirectResponse("/dashboard", status_code=303, headers=_HEADERS)
            return with_session(redirect, request)
        return Response(page, media_type="text/html", headers=_HEADERS)

    @router.get("/dashboard/static/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        """The page's script and stylesheet (nothing secret: no token needed)."""
        if name not in assets:
            raise NotFound(f"no dashboard file named {name!r}")
        return Response(assets[name], media_type=_ASSETS[name], headers=_HEADERS)

    @router.post("/dashboard/login", status_code=204)
    async def login(request: Request) -> Response:
        """Check the form field ``token``; on success set the session cookie."""
        body = await request.body()
        if len(body) > _MAX_LOGIN_BYTES:
            raise BadRequest(f"login form over {_MAX_LOGIN_BYTES} bytes")
        fields = parse_qs(body.decode("utf-8", "replace"))
        given = (fields.get("token") or [""])[0]
        if not settings.admin_token:
            return Response(status_code=204)
        if not given:
            raise BadRequest("token: field required")
        if not _same(given, settings.admin_token):
            raise Unauthorized("wrong admin token")
        return with_session(Response(status_code=204, headers=_HEADERS), request)

    @router.post("/dashboard/logout", status_code=204)
    async def logout() -> Response:
        """Forget the session cookie."""
        response = Response(status_code=204, headers=_HEADERS)
        response.delete_cookie(SESSION_COOKIE, path="/dashboard")
        return response

    @router.get("/dashboard/data")
    async def data(request: Request, experiment: str | None = None) -> Any:
        """Everything the page draws for one experiment (default: the first by name)."""
        if not signed_in(request):
            if not settings.admin_token:
                raise Forbidden(
                    f"the dashboard is off on {settings.host} without ABGATE_ADMIN_TOKEN: set it"
                )
            raise Unauthorized("log in with the admin token (form, ?token= or bearer)")
        if store is None:
            raise RedisUnavailable("this gateway runs without Redis: nothing is recorded")
        names = sorted(experiments.by_name)
        if not names:
            raise NotFound("no experiment is routed by this gateway yet")
        name = experiment or names[0]
        live = experiments.by_name.get(name)
        if live is None:
            raise NotFound(f"no experiment named {name!r} (known: {', '.join(names)})")
        (totals, windows, first, epochs), audit, ramp, drift = await asyncio.gather(
            store.recorded(name, CHART_WINDOWS),
            store.audit(name, AUDIT_ROWS),
            store.ramp_state(name),
            load_experiment_drift_async(store, name, live.config),
        )
        recorded = decode_stats(totals)
        payload = dashboard_payload(
            live.config,
            version=live.version,
            paused=live.paused,
            epochs=decode_epochs(epochs, recorded),
            windows={start: decode_stats(h) for start, h in windows.items()},
            first_window=first,
            ramp_state=ramp,
            audit=audit,
            window_s=settings.stats_window_s,
            now=store.now(),
            experiments=names,
            drift=drift_rows(drift) or None,
            shadows=recorded.shadows,
        )
        payload["login_required"] = bool(settings.admin_token)
        return JSONResponse(payload, headers=_HEADERS)

    return router
