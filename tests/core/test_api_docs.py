"""``/docs`` and ``/redoc`` of the gateway and the worker: every asset from this process.

In process (the browser test renders the same pages in Chromium): the pages
name only same-origin URLs, each asset they name is served with a year of
caching, and the bundles served hold no CDN address that the page would load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.settings import Settings
from gateway.admin import create_admin_app
from gateway.live import LiveExperiments
from model_workers.runtime import Prediction
from model_workers.server import create_worker_app

ATTRIBUTE_URLS = re.compile(r'(?:src|href)="([^"]+)"')
YEAR = "max-age=31536000"


@dataclass
class SchemaOnly:
    """Enough of a model runtime to build the worker app; never predicts."""

    model: str = "demo"
    version: str = "v1"
    n_features: int = 10
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict(self, rows: list[list[float]]) -> list[Prediction]:
        raise AssertionError("not called")


def gateway_app() -> FastAPI:
    return create_admin_app(Settings(admin_token="t"), None, LiveExperiments())


def worker_app() -> FastAPI:
    return create_worker_app(Settings(), SchemaOnly())


@pytest.fixture(params=[gateway_app, worker_app], ids=["gateway", "worker"])
def client(request: pytest.FixtureRequest) -> TestClient:
    return TestClient(request.param())


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_pages_load_only_assets_served_here(client: TestClient, page: str) -> None:
    answer = client.get(page)
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    urls = ATTRIBUTE_URLS.findall(answer.text)
    assert urls, answer.text
    assert "fonts.googleapis.com" not in answer.text
    for url in urls:
        assert url.startswith("/docs/static/"), url
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert YEAR in asset.headers["cache-control"], url
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert len(asset.content) > 1000, url


@pytest.mark.parametrize("name", ["swagger-ui-bundle.js", "redoc.standalone.js"])
def test_bundles_hold_no_cdn_address_the_page_loads(client: TestClient, name: str) -> None:
    answer = client.get(f"/docs/static/{name}")
    assert answer.status_code == 200
    bundle = answer.content
    assert len(bundle) > 500_000  # the whole bundle, not an error page
    assert b"cdn.redoc.ly" not in bundle
    assert b"cdn.jsdelivr.net" not in bundle


def test_unknown_asset_is_a_404_with_the_error_body(client: TestClient) -> None:
    answer = client.get("/docs/static/../../settings.py")
    assert answer.status_code == 404
    answer = client.get("/docs/static/secret.js")
    assert answer.status_code == 404
    assert answer.json() == {"status": "error", "error": "no docs file named 'secret.js'"}


def test_docs_routes_stay_out_of_the_schema(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]
