"""``abgate loadgen``: traffic with unit ids, and feedback with the true labels.

Rows come from the demo task's holdout set, so every answer can be scored: the
feedback posted is the row's true label, which makes each variant's accuracy
observable through the gateway exactly as production feedback would.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["LoadResult", "run_load"]


@dataclass
class LoadResult:
    """What the load run saw from the client side."""

    sent: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    by_variant: Counter[str] = field(default_factory=Counter)
    correct: Counter[str] = field(default_factory=Counter)
    feedback_sent: int = 0
    feedback_ok: int = 0  # accepted: 200 (counted) or 202 (kept until its request is known)
    feedback_waited: int = 0  # of which 202
    seconds: float = 0.0

    def summary(self) -> str:
        """Human-readable lines."""
        waited = f" ({self.feedback_waited} with 202: waited for their request)"
        lines = [
            f"sent {self.sent} requests in {self.seconds:.1f}s "
            f"({self.sent / max(self.seconds, 1e-9):.0f}/s): {self.ok} ok, "
            f"{sum(self.errors.values())} errors {dict(self.errors) or ''}".rstrip(),
            f"feedback: {self.feedback_ok}/{self.feedback_sent} accepted"
            + (waited if self.feedback_waited else ""),
        ]
        for variant, count in sorted(self.by_variant.items()):
            accuracy = self.correct[variant] / count if count else 0.0
            lines.append(f"  {variant:<14} {count:>7} answers, client-side accuracy {accuracy:.3f}")
        return "\n".join(lines)


async def run_load(
    gateway_url: str,
    *,
    rate: float,
    duration_s: float,
    concurrency: int = 16,
    feedback_share: float = 1.0,
    users: int = 100_000,
    shift: dict[int, float] | None = None,
    seed: int = 0,
    model: str | None = None,
    stop: Any = None,
    max_requests: int | None = None,
) -> LoadResult:
    """Send ``rate`` requests/s for ``duration_s`` (0 rate: as fast as possible), or
    until ``stop`` (a ``threading.Event``) is set or ``max_requests`` were sent."""
    import aiohttp

    from model_workers.training import demo_dataset

    data = demo_dataset()
    rows: np.ndarray = data.x_holdout.copy()
    for feature, delta in (shift or {}).items():
        rows[:, feature] += delta
    labels = data.y_holdout
    rng = random.Random(seed)
    result = LoadResult()
    path = "/predict" if model is None else f"/v1/{model}/predict"
    started = time.perf_counter()
    deadline = started + duration_s
    next_slot = [started]
    interval = 1.0 / rate if rate > 0 else 0.0

    async def one(session: aiohttp.ClientSession) -> None:
        index = rng.randrange(len(rows))
        user = f"user-{rng.randrange(users)}"
        result.sent += 1
        try:
            async with session.post(
                gateway_url + path,
                json={"features": [float(x) for x in rows[index]]},
                headers={"X-User-ID": user},
            ) as response:
                body: dict[str, Any] = await response.json(content_type=None)
                if response.status != 200:
                    result.errors[str(response.status)] += 1
                    return
        except (TimeoutError, aiohttp.ClientError) as exc:
            result.errors[type(exc).__name__] += 1
            return
        result.ok += 1
        variant = body.get("variant", "?")
        result.by_variant[variant] += 1
        result.correct[variant] += int(body.get("prediction") == int(labels[index]))
        if rng.random() < feedback_share:
            result.feedback_sent += 1
            payload = {"request_id": body["request_id"], "label": int(labels[index])}
            try:
                async with session.post(gateway_url + "/feedback", json=payload) as fb:
                    await fb.read()
                    # 202: accepted, counted once its request's mapping reaches Redis.
                    result.feedback_ok += int(fb.status in (200, 202))
                    result.feedback_waited += int(fb.status == 202)
            except aiohttp.ClientError:
                pass

    async def runner(session: aiohttp.ClientSession) -> None:
        while True:
            now = time.perf_counter()
            if now >= deadline or (stop is not None and stop.is_set()):
                return
            if max_requests is not None and result.sent >= max_requests:
                return
            if interval:
                slot = next_slot[0]
                next_slot[0] = max(slot, now) + interval
                if slot > now:
                    await asyncio.sleep(slot - now)
                if time.perf_counter() >= deadline:
                    return
            await one(session)

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(runner(session) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
