"""Waiting for a condition in a test: polled, with a generous ceiling, never a fixed sleep
(the suite must pass on a busy machine). Every test waits through ``wait_for``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    check: Callable[[], T | None],
    what: str = "",
    timeout: float = 60.0,
    interval: float = 0.05,
) -> T:
    """``check()``'s first truthy result, polled every ``interval`` seconds; fails naming
    ``what`` after ``timeout``."""
    end = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > end:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what or 'a condition'}"
            )
        time.sleep(interval)
