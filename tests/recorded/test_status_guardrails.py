"""``abgate status`` lists every configured guardrail with its result, on real Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from core.store import AsyncStore, FlushBatch, Store
from recorded.status import render_status
from tests.analysis.test_guardrails import config


def _record(redis_url: str, name: str, version: int, canary_errors: int) -> None:
    deltas = {
        1_000_000_000: {
            f"{version}|champion:requests": 5000,
            f"{version}|champion:errors": 50,
            f"{version}|canary:requests": 5000,
            f"{version}|canary:errors": canary_errors,
        }
    }

    async def write() -> None:
        gateway = AsyncStore(redis_url)
        try:
            await gateway.write([FlushBatch(name, deltas, [], {})])
        finally:
            await gateway.close()

    asyncio.run(write())


def _apply(store: Store, name: str, guardrails: list[dict[str, Any]] | None) -> int:
    body = config(guardrails).model_dump(mode="json") | {"name": name}
    return store.put_config(name, body, actor="test", action="apply")


def test_status_lists_each_configured_guardrail_and_says_when_there_is_none(
    redis_url: str,
) -> None:
    store = Store(redis_url)
    try:
        guards = [
            {"name": "error_rate", "max_absolute_increase": 0.01},
            {"name": "p95_latency_ms", "max_ratio": 1.2},
        ]
        _record(redis_url, "guarded", _apply(store, "guarded", guards), canary_errors=2500)
        _record(redis_url, "unguarded", _apply(store, "unguarded", []), canary_errors=2500)
        text = render_status(store, "guarded")
        as_json = json.loads(render_status(store, "guarded", as_json=True))[0]["guardrails"]
        none = render_status(store, "unguarded")
    finally:
        store.close()
    assert "  guardrail error_rate (max_absolute_increase 0.01) canary: FAILED, " in text
    assert "  guardrail p95_latency_ms (max_ratio 1.2) canary: not checked yet, " in text
    assert [(g["rule"], g["status"]) for g in as_json] == [
        ("guardrail:error_rate", "failed"),
        ("guardrail:p95_latency_ms", "not checked"),
    ]
    assert "  guardrails: none configured" in none
    assert "guardrail error_rate" not in none
