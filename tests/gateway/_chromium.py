"""The system Chromium for browser tests, and the rules for skipping without one.

Importing this module skips the importing test module when playwright is not
installed; ``needs_chromium`` skips a test, with the reason, when no Chromium
is found (``.ci/run`` installs Debian's when it runs as root).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

__all__ = ["CHROMIUM", "LAUNCH_ARGS", "find_chromium", "needs_chromium", "playwright_sync"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
LAUNCH_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]  # fmt: skip


def find_chromium() -> str | None:
    """``ABGATE_CHROMIUM``, else the first Chromium-like browser on PATH."""
    given = os.environ.get("ABGATE_CHROMIUM")
    if given:
        return given if Path(given).exists() else None
    return next((found for n in CHROMIUM_NAMES if (found := shutil.which(n))), None)


CHROMIUM = find_chromium()
playwright_sync = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium: install chromium (or chromium-browser / google-chrome) on PATH "
    "or point ABGATE_CHROMIUM at one",
)
