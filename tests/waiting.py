"""Waiting for a condition in a test: polled, with a generous ceiling, never a fixed sleep
(the suite must pass on a busy machine)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], ceiling_s: float = 60.0, what: str = "") -> T:
    """``check()``'s first result that is not None, polling every 50 ms up to the ceiling."""
    end = time.monotonic() + ceiling_s
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > end:
            raise AssertionError(f"{what or 'condition'} not met within {ceiling_s} s")
        time.sleep(0.05)
