"""Stopping background tasks in a bounded time (``gateway/tasks.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

from gateway.tasks import stop_tasks


async def _swallows_first_cancel(ended: list[str]) -> None:
    """Like a redis-py read whose timeout expired as the cancel landed: the cancel is lost."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.sleep(3600)
    try:
        await asyncio.sleep(3600)
    finally:
        ended.append("second cancel")


async def _ignores_cancels(release: asyncio.Event) -> None:
    while not release.is_set():
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


def test_a_task_that_lost_its_cancel_is_cancelled_again() -> None:
    async def main() -> tuple[bool, list[str], bool]:
        ended: list[str] = []
        task = asyncio.get_running_loop().create_task(_swallows_first_cancel(ended))
        await asyncio.sleep(0)
        stopped = await stop_tasks([task], timeout=5.0)
        return stopped, ended, task.done()

    stopped, ended, done = asyncio.run(main())
    assert stopped and done and ended == ["second cancel"]


def test_a_task_that_never_ends_is_given_up_on_after_the_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> tuple[bool, float, bool]:
        loop = asyncio.get_running_loop()
        release = asyncio.Event()
        task = loop.create_task(_ignores_cancels(release), name="stubborn")
        await asyncio.sleep(0)
        start = loop.time()
        stopped = await stop_tasks([task], timeout=0.3)
        waited = loop.time() - start
        alive = not task.done()
        release.set()
        await task
        return stopped, waited, alive

    with caplog.at_level(logging.WARNING, logger="abgate.gateway"):
        stopped, waited, alive = asyncio.run(main())
    assert not stopped and alive
    assert waited >= 0.3
    assert "still running after 0.3s: stubborn" in caplog.text


def test_ended_and_failed_tasks_are_reported_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    async def main() -> bool:
        task = asyncio.get_running_loop().create_task(fails(), name="failing")
        await asyncio.sleep(0)
        return await stop_tasks([task], timeout=1.0)

    with caplog.at_level(logging.WARNING, logger="abgate.gateway"):
        assert asyncio.run(main())
    assert "background task failing failed: RuntimeError('boom')" in caplog.text
