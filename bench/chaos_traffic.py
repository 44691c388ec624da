"""The chaos soak's clients: predict calls and feedback to either replica, with failover."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import aiohttp

from bench.chaos_cluster import Cluster
from bench.chaos_result import ChaosResult

__all__ = ["run_traffic"]

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
UNSCORED = "not answered by its variant"  # the 409 for feedback on a fallback answer


class _BothDown(Exception):
    """Both replicas refused a call at connect for a long while."""


async def run_traffic(
    cluster: Cluster,
    result: ChaosResult,
    duration: float,
    concurrency: int,
    feedback_share: float,
    result_accepted: set[str],
) -> None:
    """``concurrency`` clients for ``duration`` seconds, counting into ``result``; the ids
    of accepted feedback go in ``result_accepted``."""
    rng = random.Random(7)
    urls = cluster.urls
    counter = iter(range(10**9))
    accepted = result_accepted
    deadline = time.monotonic() + duration

    async def send(session: aiohttp.ClientSession, path: str, **kw: Any) -> tuple[int, Any]:
        """POST to a replica; refused at connect: the other one (a load balancer's retry)."""
        first = rng.randrange(2)
        for attempt in range(40):
            url = urls[(first + attempt) % 2]
            try:
                async with session.post(url + path, **kw) as response:
                    return response.status, await response.json(content_type=None)
            except aiohttp.ClientOSError as exc:
                # Refused at connect, or closed by a replica shutting down before the
                # request was all sent (it had the connection in its backlog): the
                # request never reached it. Anything later is a lost answer.
                unsent = isinstance(exc, aiohttp.ClientConnectorError) or (
                    "Can not write request body" in str(exc)
                )
                if not unsent:
                    raise
                result.failovers += 1
                await asyncio.sleep(0.05 * (attempt // 2))
        raise _BothDown(path)

    async def feedback(session: aiohttp.ClientSession, rid: str) -> None:
        payload = {"request_id": rid, "label": rng.randrange(2)}
        result.feedback_sent += 1
        for _attempt in range(5):
            try:
                status, body = await send(session, "/feedback", json=payload)
            except (TimeoutError, aiohttp.ClientError, _BothDown) as exc:
                result.lost_in_flight[f"feedback {type(exc).__name__}"] += 1
                result.feedback_resent += 1  # the answer was lost: the same feedback again
                continue
            if status in (200, 202):
                result.feedback_repeated += int(bool(body.get("repeated")))
                if rid not in accepted:
                    accepted.add(rid)
                    result.feedback_accepted += 1
                    result.feedback_waited += int(status == 202)
                    result.feedback_answers[f"{status} {body.get('waiting', '')}".strip()] += 1
            elif status == 409 and UNSCORED in str(body.get("error")):
                result.feedback_unscored += 1
            else:
                result.errors[f"feedback {status}: {body.get('error', '')[:60]}"] += 1
            return
        result.errors["feedback: no answer after 5 tries"] += 1

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            i = next(counter)
            rid = f"chaos-{i}"
            headers = {"X-User-ID": f"user-{i}", "X-Request-ID": rid}
            try:
                status, _ = await send(session, "/predict", json={"features": ROW},
                                       headers=headers)  # fmt: skip
            except _BothDown:
                result.errors["predict: both replicas refused"] += 1
                continue
            except (TimeoutError, aiohttp.ClientError) as exc:
                result.predicts_lost_in_flight += 1
                result.lost_in_flight[f"predict {type(exc).__name__}: {exc}"[:120]] += 1
                continue
            result.predicts_answered += 1
            if status != 200:
                result.errors[f"predict {status}"] += 1
                continue
            result.predicts_ok += 1
            if rng.random() < feedback_share:
                await feedback(session, rid)

    # A new connection per call: a replica being stopped refuses new ones at once,
    # and answers every call it took.
    connector = aiohttp.TCPConnector(force_close=True, limit=2 * concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
