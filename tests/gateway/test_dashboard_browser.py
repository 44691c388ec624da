"""The dashboard in a real headless Chromium while traffic flows through a real gateway.

Skipped, with the reason, where no Chromium is installed (``.ci/run`` installs
Debian's when it runs as root). Set ``ABGATE_SAVE_SCREENSHOT=1`` to copy the
1440x900 screenshot to ``reports/dashboard.png`` for docs/gateway.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from abgate.loadgen import LoadResult, run_load
from abgate.processes import Child
from core.store import Store
from experiments.loader import load_experiment
from model_workers.registry import ModelRegistry
from recorded.drift import store_drift_references
from tests.conftest import ADMIN_TOKEN, port_of, start_gateway, write_config
from tests.gateway._chromium import CHROMIUM, LAUNCH_ARGS, needs_chromium, playwright_sync
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
LAPTOP = {"width": 1440, "height": 900}
RAMP = """ramp:
  steps: [5, 15, 50, 100]
  min_duration_s: 60
  min_samples: 200"""


class Traffic:
    """``abgate loadgen``'s engine in a thread: labelled requests until stopped."""

    def __init__(self, url: str, rate: float) -> None:
        self.stop = threading.Event()
        self.result: LoadResult | None = None
        self._thread = threading.Thread(target=self._run, args=(url, rate), daemon=True)

    def _run(self, url: str, rate: float) -> None:
        self.result = asyncio.run(
            run_load(url, rate=rate, duration_s=300, concurrency=4, seed=7, stop=self.stop)
        )

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.finish()

    def finish(self) -> LoadResult:
        self.stop.set()
        self._thread.join(timeout=30)
        assert self.result is not None, "load generator did not finish"
        return self.result


@pytest.fixture
def gateway(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child], demo_registry: ModelRegistry
) -> Iterator[Child]:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    config = write_config(
        tmp_path / "demo.yaml", ports, {"champion": 80, "challenger": 10, "canary": 10},
        tail=RAMP,
    )  # fmt: skip
    # The training references, as `abgate apply` stores them, so drift is drawn too.
    store_drift_references(Store(redis_url), load_experiment(config), demo_registry)
    # 2-s windows so the charts have many points within a short test; half the
    # requests sampled for drift so its table fills within it.
    child = start_gateway(
        config, redis_url, ABGATE_STATS_WINDOW_S="2", ABGATE_DRIFT_SAMPLE_RATE="0.5"
    )
    yield child
    child.stop()


def page_counts(page: Any) -> tuple[dict[str, int], float]:
    """Requests per variant as the page shows them, and the refresh they came from.

    Read in one script, so a refresh cannot fall between the counts and their stamp."""
    counts, stamp = page.evaluate(
        """() => [Object.fromEntries([...document.querySelectorAll('#split .split-row')].map(
              row => [row.dataset.variant, Number(row.querySelector('[data-field="requests"]')
                                                  .textContent.replace(/,/g, ''))])),
                  document.getElementById('status').dataset.generatedAt]"""
    )
    return {k: int(v) for k, v in counts.items()}, float(stamp or 0)


@needs_chromium
def test_dashboard_in_chromium_matches_the_admin_api(
    gateway: Child, tmp_path: Path, repo_root: Path
) -> None:
    change = requests.put(
        f"{gateway.url}/admin/experiments/demo/weights", headers=AUTH, timeout=10,
        json={"weights": {"champion": 70, "challenger": 15, "canary": 15},
              "reason": "more traffic to the new versions"},
    )  # fmt: skip
    assert change.status_code == 200, change.text
    listed = requests.get(f"{gateway.url}/admin/experiments", headers=AUTH, timeout=10).json()
    weights = listed["experiments"][0]["weights"]
    assert weights == {"champion": 70, "challenger": 15, "canary": 15}

    with (
        Traffic(gateway.url, rate=120) as traffic,
        playwright_sync.sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            context = browser.new_context(viewport=LAPTOP)
            page = context.new_page()
            page.goto(f"{gateway.url}/dashboard")

            # Signed out: the login form, and a wrong token is refused with a message.
            page.locator("#login-form").wait_for(state="visible")
            assert page.locator("#board").is_hidden()
            page.fill("#token", "not-the-token")
            page.click("#login-form button")
            page.locator("#login-error").filter(has_text="wrong admin token").wait_for()
            page.fill("#token", ADMIN_TOKEN)
            page.click("#login-form button")
            page.locator("#board").wait_for(state="visible")

            cookie = next(c for c in context.cookies() if c["name"] == "abgate_dashboard")
            assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert ADMIN_TOKEN not in cookie["value"]

            # The configured split is the admin API's, exactly.
            total_weight = sum(weights.values())
            for variant, weight in weights.items():
                shown = page.locator(
                    f'#split .split-row[data-variant="{variant}"] [data-field="configured"]'
                ).inner_text()
                assert shown == f"{100 * weight / total_weight:.1f}%"

            # Let a few windows fill, then check the live counts against the JSON.
            wait_for(
                lambda: len(
                    requests.get(f"{gateway.url}/dashboard/data", headers=AUTH, timeout=10)
                    .json()["series"]
                ) >= 6,
                timeout=60, what="six recorded windows",
            )  # fmt: skip
            page.wait_for_function(
                "document.querySelectorAll('#chart-p99 path').length >= 3", timeout=15_000
            )
            page.wait_for_function(
                "document.querySelectorAll('#metric svg rect').length >= 2", timeout=30_000
            )
            # The page is live: once it has refreshed after a read of the JSON, it shows at
            # least that read's counts, and at most those of a read after it (no rate assumed).
            before = requests.get(f"{gateway.url}/dashboard/data", headers=AUTH, timeout=10).json()
            page.wait_for_function(
                "g => Number(document.getElementById('status').dataset.generatedAt) > g",
                arg=before["generated_at"], timeout=30_000,
            )  # fmt: skip
            shown, shown_at = page_counts(page)
            after = requests.get(f"{gateway.url}/dashboard/data", headers=AUTH, timeout=10).json()
            for first, last in zip(before["split"], after["split"], strict=True):
                variant = first["variant"]
                assert first["requests"] <= shown[variant] <= last["requests"], (
                    variant, first["requests"], shown, last["requests"], shown_at)  # fmt: skip

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 20_000
            if os.environ.get("ABGATE_SAVE_SCREENSHOT"):
                (repo_root / "reports").mkdir(exist_ok=True)
                shutil.copyfile(shot, repo_root / "reports" / "dashboard.png")

            # Traffic stops: the page settles on exactly what the client was served.
            result = traffic.finish()
            assert result.ok > 300 and not result.errors, result.summary()
            served = {v: result.by_variant.get(v, 0) for v in weights}
            page.wait_for_function(
                """expected => [...document.querySelectorAll('#split .split-row')].every(row =>
                    row.querySelector('[data-field="requests"]').textContent.replace(/,/g, '')
                    === String(expected[row.dataset.variant]))""",
                arg=served,
                timeout=30_000,
            )
            final = requests.get(f"{gateway.url}/dashboard/data", headers=AUTH, timeout=10).json()
            assert {a["variant"]: a["requests"] for a in final["split"]} == served

            # The primary metric's interval drawn per challenger, its lift as in the JSON.
            page.wait_for_function(
                "g => Number(document.getElementById('status').dataset.generatedAt) >= g",
                arg=final["generated_at"],
            )
            assert len(final["primary"]["variants"]) == 2
            for test in final["primary"]["variants"]:
                assert test["difference_type"] == "relative"
                lift = page.locator(
                    f'#metric tr[data-variant="{test["variant"]}"] [data-field="lift"]'
                ).inner_text()
                assert lift == f"{100 * test['estimate']:+.2f}%".replace("-", "\u2212")
            # Drift: one row per variant and check, as in the JSON, largest PSI first.
            drift_rows = page.locator("#drift tbody tr")
            assert drift_rows.count() == len(final["drift"]) >= 3 * 11
            first = drift_rows.nth(0).inner_text().split("\t")
            assert first[:2] == [final["drift"][0][k] for k in ("variant", "check")]
            assert first[-1] == final["drift"][0]["status"]
            audit = page.locator("#audit").inner_text()
            assert "set_weights" in audit and "more traffic to the new versions" in audit
            assert "canary at 15% · not started" in page.locator("#ramp").inner_text()
        finally:
            browser.close()
