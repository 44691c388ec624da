"""Stopping background tasks in a bounded time.

A cancellation can be lost: redis-py's reads run under ``asyncio.timeout``,
and on Python 3.11 a cancel that lands as that timeout expires is turned into
the timeout and swallowed (seen once in 300 cancels of a pub/sub
``get_message(timeout=0.05)``). A task that swallowed its cancel runs on, and a
shutdown that awaited it hung forever. So a task is cancelled again until it
ends, and given up on after a deadline.
"""

from __future__ import annotations

import asyncio
import logging

__all__ = ["stop_tasks"]

log = logging.getLogger("abgate.gateway")

RETRY_S = 0.1


async def stop_tasks(tasks: list[asyncio.Task[None]], timeout: float) -> bool:
    """Cancel ``tasks`` (again, until they end) for up to ``timeout`` s; True when all ended."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pending = {task for task in tasks if not task.done()}
    while pending:
        left = deadline - loop.time()
        if left <= 0:
            names = ", ".join(sorted(task.get_name() for task in pending))
            log.warning("background task(s) still running after %gs: %s", timeout, names)
            return False
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(RETRY_S, left))
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            log.warning("background task %s failed: %r", task.get_name(), task.exception())
    return True
