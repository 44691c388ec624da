"""The shadow caller's pace (``gateway/shadow_caller.py``): while calls are in flight its
loop turns once per ``PACE_S`` instead of waking at each answer; with none it waits.

``time.sleep`` is replaced by a counter, so each test counts the paced turns
instead of timing them. The child's calls themselves are tested against a real
server in ``test_shadow_calls.py``.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway import shadow_caller
from gateway.shadow_caller import PACE_S, _Calls, _paced


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(shadow_caller.time, "sleep", slept.append)
    return slept


def test_without_calls_the_caller_waits_without_turning(pauses: list[float]) -> None:
    async def run() -> None:
        done = asyncio.get_running_loop().create_future()
        calls = _Calls(done)
        pacing = asyncio.create_task(_paced(calls, done))
        for _ in range(50):
            await asyncio.sleep(0)
        assert pauses == []  # nothing in flight: no turn, no pause
        calls.connection_lost(None)  # the socket closed: it ends
        await asyncio.wait_for(pacing, 5.0)

    asyncio.run(run())


def test_with_calls_in_flight_the_loop_turns_once_per_pace(pauses: list[float]) -> None:
    async def run() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        calls = _Calls(done)
        pacing = asyncio.create_task(_paced(calls, done))
        await asyncio.sleep(0)
        held = loop.create_future()  # a call in flight until this resolves
        calls.tasks.add(asyncio.ensure_future(held))
        calls.busy.set()
        for _ in range(20):
            await asyncio.sleep(0)
        in_flight = len(pauses)
        assert in_flight >= 5 and set(pauses) == {PACE_S}
        held.set_result(None)
        calls.tasks.clear()
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(pauses) <= in_flight + 2  # back to waiting once nothing is in flight
        calls.connection_lost(None)
        await asyncio.wait_for(pacing, 5.0)

    asyncio.run(run())
