"""Shared fixtures: a real Redis for the session, a trained registry, real workers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from abgate.processes import Child, abgate_argv, start_child, wait_http_ok
from abgate.redis_server import EmbeddedRedis, free_port, start_redis
from model_workers.demo_versions import ensure_demo_versions
from model_workers.registry import ModelRegistry


@pytest.fixture(scope="session")
def redis_server() -> Iterator[EmbeddedRedis]:
    """One real Redis server for the whole run, without persistence, stopped by pid."""
    server = start_redis(persistence=False)
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: EmbeddedRedis) -> Iterator[str]:
    """The session server's URL, flushed before each test that uses it."""
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    yield redis_server.url


@pytest.fixture(scope="session")
def demo_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """A registry with the three demo versions, trained once per run."""
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    ensure_demo_versions(registry)
    return registry


def start_worker(
    registry: ModelRegistry, version: str, *, env: dict[str, str] | None = None
) -> Child:
    """Start ``abgate worker`` as a real process on a free port and wait until ready."""
    port = free_port()
    child = start_child(
        f"worker-{version}",
        abgate_argv(
            "worker", "--model", "demo", "--version", version,
            "--port", str(port), "--registry", str(registry.root),
        ),
        url=f"http://127.0.0.1:{port}",
        env=env,
    )  # fmt: skip
    try:
        wait_http_ok(f"{child.url}/ready", child=child, timeout=60)
    except Exception:
        child.stop()
        raise
    return child


@pytest.fixture(scope="session")
def worker_v1(demo_registry: ModelRegistry) -> Iterator[Child]:
    """A real worker process serving demo v1."""
    child = start_worker(demo_registry, "v1")
    yield child
    child.stop()


@pytest.fixture
def repo_root() -> Path:
    """The repository root."""
    return Path(__file__).resolve().parents[1]
