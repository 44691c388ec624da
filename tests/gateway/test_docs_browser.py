"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) in a real headless Chromium, offline.

Every request a page makes to a host other than this machine is aborted and
recorded: the pages must render from the process's own assets alone. The
gateway runs under abgate's own server and under uvicorn; the model worker
serves the same pages. Skipped, with the reason, where no Chromium is installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from abgate.processes import Child
from abgate.redis_server import free_port
from tests.conftest import ADMIN_TOKEN, start_gateway, write_config
from tests.gateway._chromium import CHROMIUM, LAUNCH_ARGS, needs_chromium, playwright_sync

pytestmark = [pytest.mark.integration, needs_chromium]

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
TIMEOUT_MS = 60_000  # a busy machine parses 2.6 MB of script slowly


@dataclass
class Requests:
    """What a page asked for: off-machine attempts (each aborted) and local failures."""

    off_machine: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    admin_authorization: list[str | None] = field(default_factory=list)

    def route(self, route: Any) -> None:
        request = route.request
        parts = urlsplit(request.url)
        if parts.scheme in ("http", "https", "ws", "wss") and parts.hostname not in LOCAL_HOSTS:
            self.off_machine.append(request.url)
            route.abort("internetdisconnected")
            return
        if parts.path.startswith("/admin/"):
            self.admin_authorization.append(request.headers.get("authorization"))
        route.continue_()

    def response(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def request_failed(self, request: Any) -> None:
        if urlsplit(request.url).hostname in LOCAL_HOSTS:
            self.failed.append(f"{request.failure} {request.url}")


@dataclass
class OfflinePage:
    """A Chromium page whose every off-machine request is aborted, and its log."""

    page: Any
    requests: Requests

    def assert_offline_and_complete(self) -> None:
        # Some requests come late (ReDoc draws its logo after the first render): let the
        # page settle before looking.
        self.page.wait_for_load_state("networkidle")
        assert self.requests.off_machine == [], "the page tried to leave this machine"
        assert self.requests.failed == [], "a local request of the page failed"


@pytest.fixture
def offline() -> Iterator[OfflinePage]:
    requests = Requests()
    with playwright_sync.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            context.set_default_timeout(TIMEOUT_MS)
            context.route("**/*", requests.route)
            page = context.new_page()
            page.on("response", requests.response)
            page.on("requestfailed", requests.request_failed)
            yield OfflinePage(page, requests)
        finally:
            browser.close()


@pytest.fixture(params=["abgate", "uvicorn"])
def gateway(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Child]:
    """A gateway without Redis (the docs need none) under each HTTP server."""
    config = write_config(tmp_path / "docs.yaml", {"champion": free_port()}, {"champion": 100})
    child = start_gateway(config, None, "--server", request.param)
    yield child
    child.stop()


def swagger_operations(page: Any) -> list[str]:
    """The paths Swagger UI lists, once it has drawn them."""
    page.locator(".opblock-summary-path").first.wait_for()
    paths: list[str] = page.locator(".opblock-summary-path").evaluate_all(
        "nodes => nodes.map(n => n.dataset.path)"
    )
    return paths


def test_swagger_ui_offline_lists_the_operations_and_authorizes(
    gateway: Child, offline: OfflinePage
) -> None:
    page = offline.page
    page.goto(f"{gateway.url}/docs")
    paths = swagger_operations(page)
    assert {"/predict", "/feedback", "/admin/experiments"} <= set(paths), paths

    # The Authorize button takes the admin token for the bearer scheme...
    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.get_by_text("adminToken (http, Bearer)").wait_for()
    dialog.locator("input").fill(ADMIN_TOKEN)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()

    # ...and "Try it out" on an admin operation sends it and gets 200.
    operation = page.locator("#operations-admin-list_experiments_admin_experiments_get")
    operation.locator(".opblock-summary").click()
    operation.locator(".try-out__btn").click()
    operation.locator(".execute").click()
    status = operation.locator(".live-responses-table tr.response .response-col_status").first
    status.wait_for()
    assert status.inner_text().strip() == "200"
    assert '"name": "demo"' in operation.locator(".live-responses-table").inner_text()
    assert offline.requests.admin_authorization == [f"Bearer {ADMIN_TOKEN}"]
    offline.assert_offline_and_complete()


def test_redoc_offline_renders_the_title_and_operations(
    gateway: Child, offline: OfflinePage
) -> None:
    page = offline.page
    page.goto(f"{gateway.url}/redoc")
    page.locator("h1", has_text="abgate gateway").wait_for()
    # An admin operation is drawn too, with the bearer scheme it needs.
    section = "tag/admin/operation/list_experiments_admin_experiments_get"
    operation = page.locator(f"[data-section-id='{section}']")
    operation.locator("h2", has_text="List Experiments").wait_for()
    assert "adminToken" in operation.inner_text()
    offline.assert_offline_and_complete()


def test_worker_docs_offline(worker_v1: Child, offline: OfflinePage) -> None:
    page = offline.page
    page.goto(f"{worker_v1.url}/docs")
    assert "/predict" in swagger_operations(page)
    offline.assert_offline_and_complete()
    page.goto(f"{worker_v1.url}/redoc")
    page.locator("h1", has_text="abgate worker: demo v1").wait_for()
    offline.assert_offline_and_complete()
