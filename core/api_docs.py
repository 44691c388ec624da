"""Swagger UI at ``/docs`` and ReDoc at ``/redoc``, served from this process, no CDN.

FastAPI's own pages load their script and stylesheet (and a favicon, and
ReDoc's Google fonts) from the internet, so they stay blank on a machine
without it. The ``fastapi-offline`` package ships the same Swagger UI and
ReDoc bundles; they are served here under ``/docs/static/`` with a year of
browser caching, the URL carrying that package's version so an upgrade is
fetched anew. Both pages ship in the gateway and in the model workers.
"""

from __future__ import annotations

import functools
from importlib import metadata, resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

from core.errors import NotFound

__all__ = ["ASSETS_PACKAGE", "STATIC_PREFIX", "install_api_docs"]

ASSETS_PACKAGE = "fastapi_offline"
STATIC_PREFIX = "/docs/static"
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "redoc.standalone.js": "text/javascript; charset=utf-8",
    "favicon.png": "image/png",
}
_ASSET_HEADERS = {
    "Cache-Control": "public, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
}
_PAGE_HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}
# No online validator badge: the page asks nothing of any origin but this one.
_SWAGGER_PARAMETERS = {"validatorUrl": None}


# ReDoc's side menu draws Redocly's logo from their CDN whatever its options say; an
# empty inline image instead keeps the page from reaching out (the logo is hidden
# anyway when it fails to load, as it does offline).
_OFFLINE_REWRITES = {
    "redoc.standalone.js": (
        b"https://cdn.redoc.ly/redoc/logo-mini.svg",
        b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E",
    ),
}


@functools.cache
def _asset(name: str) -> bytes:
    # Read on first request only: each gateway process would otherwise hold ~2.8 MB it
    # may never serve.
    data = (resources.files(ASSETS_PACKAGE) / "static" / name).read_bytes()
    if name in _OFFLINE_REWRITES:
        data = data.replace(*_OFFLINE_REWRITES[name])
    return data


@functools.cache
def _assets_version() -> str:
    return metadata.version("fastapi-offline")


def install_api_docs(app: FastAPI) -> None:
    """Add ``/docs``, ``/redoc`` and their assets to ``app`` (built with docs_url=None)."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("build the app with docs_url=None and redoc_url=None")
    openapi_url = app.openapi_url or "/openapi.json"

    def static(request: Request, name: str) -> str:
        # Behind a proxy that mounts the app under a prefix, as FastAPI's own pages do.
        root = request.scope.get("root_path", "")
        return f"{root}{STATIC_PREFIX}/{name}?v={_assets_version()}"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=request.scope.get("root_path", "") + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=static(request, "swagger-ui-bundle.js"),
            swagger_css_url=static(request, "swagger-ui.css"),
            swagger_favicon_url=static(request, "favicon.png"),
            swagger_ui_parameters={**_SWAGGER_PARAMETERS, **(app.swagger_ui_parameters or {})},
        )
        page.headers.update(_PAGE_HEADERS)
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=request.scope.get("root_path", "") + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=static(request, "redoc.standalone.js"),
            redoc_favicon_url=static(request, "favicon.png"),
            with_google_fonts=False,
        )
        page.headers.update(_PAGE_HEADERS)
        return page

    @app.get(STATIC_PREFIX + "/{name}", include_in_schema=False)
    async def asset(name: str) -> Any:
        media_type = _ASSETS.get(name)
        if media_type is None:
            raise NotFound(f"no docs file named {name!r}")
        return Response(_asset(name), media_type=media_type, headers=_ASSET_HEADERS)
