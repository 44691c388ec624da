"""The two store clients run the same commands: each command's keys, calls and reply
reading are written once (``core/store/command.py``), and each client only runs them.

Checked three ways: by reading the clients' source (a method both have makes no Redis
call of its own and runs the same command), by running a command's steps with no Redis
at all, and against a real Redis: a script's first run after its cache was flushed, and
the errors each client raises when Redis is away.
"""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from abgate.redis_server import free_port
from core.errors import RedisUnavailable
from core.store import AsyncStore, FeedbackItem, FeedbackResult, FlushBatch, Lifetimes, Store
from core.store import flush as flush_commands
from core.store.command import ScriptCall
from tests.test_architecture import ROOT, imports_of, product_modules

STORE = ROOT / "core" / "store"

# Methods that are a client's own, not a store command: connection handling, the sync
# ramp lock (redis-py's Lock) and the async config listener (pub/sub).
OWN = {
    "ping", "close", "run", "now", "config_updates", "acquire_ramp_lock", "ramp_lock_owner",
    "refresh_ramp_lock", "release_ramp_lock",
}  # fmt: skip


def _methods(path: Path, cls: str) -> dict[str, ast.FunctionDef | ast.AsyncFunctionDef]:
    (node,) = [n for n in ast.parse(path.read_text()).body if getattr(n, "name", "") == cls]
    assert isinstance(node, ast.ClassDef)
    return {
        m.name: m
        for m in node.body
        if isinstance(m, ast.FunctionDef | ast.AsyncFunctionDef) and not m.name.startswith("_")
    }


def _commands_run(method: ast.AST) -> set[str]:
    """``module.command`` of every ``self.run(module.command(...))`` in ``method``."""
    found = set()
    for node in ast.walk(method):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "self.run" and node.args:
            inner = node.args[0]
            # `command = feedback.claim_feedback(...)` then `self.run(command)`: follow it.
            if isinstance(inner, ast.Name):
                (inner,) = [
                    a.value
                    for a in ast.walk(method)
                    if isinstance(a, ast.Assign) and ast.unparse(a.targets[0]) == inner.id
                ]
            assert isinstance(inner, ast.Call)
            found.add(ast.unparse(inner.func))
    return found


def _own_redis_calls(method: ast.AST) -> list[str]:
    """What in ``method`` talks to Redis or builds a key itself."""
    return [
        ast.unparse(node)
        for node in ast.walk(method)
        if (isinstance(node, ast.Attribute) and ast.unparse(node) == "self.client")
        or (isinstance(node, ast.Name) and node.id in ("Keys", "pipe"))
    ]


def test_the_clients_run_one_description_of_each_command() -> None:
    sync = _methods(STORE / "sync_client.py", "Store")
    async_ = _methods(STORE / "async_client.py", "AsyncStore")
    for name, method in [*sync.items(), *async_.items()]:
        if name not in OWN:
            assert not _own_redis_calls(method), f"{name} talks to Redis itself"
            assert len(_commands_run(method)) == 1, f"{name} runs no store command"
    twins = (set(sync) & set(async_)) - OWN
    assert len(twins) >= 8
    for name in sorted(twins):
        # recorded: the CLI reads totals and epochs, the dashboard recent windows too.
        if name != "recorded":
            assert _commands_run(sync[name]) == _commands_run(async_[name]), name


def test_only_the_store_imports_the_redis_client() -> None:
    importers = {
        path.relative_to(ROOT).as_posix()
        for path in product_modules()
        for _, module in imports_of(path.read_text(), path.relative_to(ROOT).as_posix())
        if module.split(".")[0] == "redis"
    }
    assert importers
    assert {path for path in importers if not path.startswith("core/store/")} == set()


def test_a_flush_is_one_round_of_script_runs_in_its_experiments_slot() -> None:
    now = time.time()
    hour = int(now // 3600)
    item = FeedbackItem("r2", "token", "accuracy", "label", 1.0, "", now, 60)
    batch = FlushBatch(
        "checkout",
        {60: {"1|x:requests": 1}},
        [(now, "r1", "x", "v1", True, 1.0, False, None)],
        {hour: {"r1": ("x", "v1", 1, 1, None)}},
        feedback=[item],
    )
    command = flush_commands.write([batch], Lifetimes())
    calls = next(command.steps)  # no Redis: the steps are data
    runs = [c for c in calls if isinstance(c, ScriptCall)]
    assert [c.script.name for c in runs] == ["flush", "events", "requests", "feedback"]
    assert len(runs) == len(calls)
    assert all("{checkout}" in key for c in runs for key in c.keys)
    with pytest.raises(StopIteration) as done:
        command.steps.send([1, 1, 0, [b"pending", b"", b"0"]])
    assert done.value.value == [FeedbackResult("pending")]  # only the feedback's reply is read


def test_a_script_run_alone_is_loaded_again_after_the_script_cache_was_flushed(
    store_target: tuple[str, bool],
) -> None:
    url, cluster = store_target
    sync = Store(url, cluster=cluster)
    sync.client.script_flush()  # on every primary of a cluster
    assert sync.put_config("flushed", {}, actor="t", action="apply") == 1

    async def scenario() -> FeedbackResult:
        store = AsyncStore(url, cluster=cluster)
        await store.client.script_flush()
        item = FeedbackItem("r1", "t1", "accuracy", "label", 1.0, "x|v1|1|1", time.time(), 60)
        result = await store.feedback("flushed", item, park=False)
        await store.close()
        return result

    assert asyncio.run(scenario()) == FeedbackResult("counted", "x|v1|1|1", 1.0)
    sync.close()


# Every sync call with an example of its arguments.
SYNC_CALLS: dict[str, tuple[Any, ...]] = {
    "put_config": ("demo", {}),
    "get_config": ("demo",),
    "experiments": (),
    "audit": ("demo",),
    "add_audit": ("demo",),
    "totals": ("demo",),
    "recorded": ("demo",),
    "epochs": ("demo",),
    "windows": ("demo",),
    "windows_since": ("demo", 0.0),
    "events": ("demo",),
    "put_drift_reference": ("demo", {}),
    "drift_reference": ("demo",),
    "ramp_state": ("demo",),
    "save_ramp_state": ("demo", {}),
    "clear_ramp_state": ("demo",),
    "acquire_ramp_lock": ("demo", "me", 5.0),
    "ramp_lock_owner": ("demo",),
    "refresh_ramp_lock": ("demo", "me", 5.0),
    "release_ramp_lock": ("demo", "me"),
}
KEYWORDS = {"put_config": {"actor": "t", "action": "a"}, "add_audit": {"actor": "t", "action": "a"}}


def test_every_sync_call_is_listed_here() -> None:
    listed = set(SYNC_CALLS) | {"ping", "close", "run"}
    assert set(_methods(STORE / "sync_client.py", "Store")) == listed


@pytest.fixture(scope="module")
def nothing_listening() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.mark.parametrize("method", sorted(SYNC_CALLS))
def test_a_sync_call_with_redis_away_raises_redis_unavailable(
    method: str, nothing_listening: str
) -> None:
    store = Store(nothing_listening)
    with pytest.raises(RedisUnavailable, match=r"^cannot .*Connection refused"):
        getattr(store, method)(*SYNC_CALLS[method], **KEYWORDS.get(method, {}))
    store.close()


def test_async_calls_with_redis_away(nothing_listening: str) -> None:
    """The writes and the admin API's reads raise RedisUnavailable; the config listener's
    reads and the feedback lookups raise the client's own error (their callers retry on
    any error)."""
    item = FeedbackItem("r1", "t1", "accuracy", "label", 1.0, "", time.time(), 60)
    unavailable = {
        "write": ([FlushBatch("demo", {60: {"x:requests": 1}}, [], {})],),
        "feedback": ("demo", item),
        "expire_feedback": ("demo", 0.0),
        "put_config": ("demo", {}),
        "audit": ("demo",),
        "windows_since": ("demo", 0.0),
        "drift_reference": ("demo",),
        "recorded": ("demo", 10),
        "ramp_state": ("demo",),
    }
    own = {
        "get_config": ("demo",),
        "experiments": (),
        "routing_extras": ("demo",),
        "lookup_request": ("demo", "r1", 0.0),
        "claim_feedback": ("demo", "r1"),
    }
    keywords = {"feedback": {"park": True}, "put_config": {"actor": "t", "action": "a"}}
    assert set(_methods(STORE / "async_client.py", "AsyncStore")) - OWN == set(unavailable) | set(
        own
    )

    async def raised(method: str, args: tuple[Any, ...]) -> type[BaseException]:
        store = AsyncStore(nothing_listening)
        try:
            await getattr(store, method)(*args, **keywords.get(method, {}))
        except Exception as exc:  # what is raised is the point
            return type(exc)
        finally:
            await store.close()
        raise AssertionError(f"{method} did not fail")

    async def scenario() -> dict[str, type[BaseException]]:
        calls = {**unavailable, **own}
        return {method: await raised(method, args) for method, args in calls.items()}

    found = asyncio.run(scenario())
    assert {m for m, error in found.items() if error is RedisUnavailable} == set(unavailable)
    assert all(issubclass(found[m], redis.ConnectionError) for m in own), found
