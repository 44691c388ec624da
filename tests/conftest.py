"""Shared fixtures: a real Redis (and Redis Cluster) for the session, a registry, real workers."""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
import redis

from abgate.processes import Child, abgate_argv, start_child, wait_http_ok
from abgate.redis_server import (
    EmbeddedCluster,
    EmbeddedRedis,
    free_port,
    start_redis,
    start_redis_cluster,
)
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
def redis_cluster() -> Iterator[EmbeddedCluster]:
    """A real 3-master Redis Cluster, started on first use (~2 s), every node stopped by pid."""
    cluster = start_redis_cluster(masters=3)
    yield cluster
    cluster.stop()


@pytest.fixture
def cluster_url(redis_cluster: EmbeddedCluster) -> Iterator[str]:
    """A seed node's URL of the session cluster, every master flushed before the test."""
    for node in redis_cluster.nodes:
        client = redis.Redis.from_url(node.url)
        client.flushall()
        client.close()
    yield redis_cluster.url


@pytest.fixture(params=["single", "cluster"])
def store_target(request: pytest.FixtureRequest) -> tuple[str, bool]:
    """``(url, cluster)``: the test runs once on a single Redis and once on the cluster."""
    if request.param == "cluster":
        return request.getfixturevalue("cluster_url"), True
    return request.getfixturevalue("redis_url"), False


@pytest.fixture(scope="session")
def demo_registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    """A registry with the three demo versions, trained once per run."""
    registry = ModelRegistry(tmp_path_factory.mktemp("registry"))
    ensure_demo_versions(registry)
    return registry


def start_worker(
    registry: ModelRegistry,
    version: str,
    *,
    env: dict[str, str] | None = None,
    log: IO[str] | None = None,
) -> Child:
    """Start ``abgate worker`` as a real process on a free port and wait until ready.

    With ``log``, its output is copied there, each line prefixed by its name.
    """
    port = free_port()
    child = start_child(
        f"worker-{version}",
        abgate_argv(
            "worker", "--model", "demo", "--version", version,
            "--port", str(port), "--registry", str(registry.root),
        ),
        url=f"http://127.0.0.1:{port}",
        env=env,
        log=log,
    )  # fmt: skip
    return _ready(child, "/ready")


def _ready(child: Child, path: str) -> Child:
    """Wait until ``child`` answers ``path``; stop it (by pid) if it never does."""
    try:
        wait_http_ok(f"{child.url}{path}", child=child, timeout=60)
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


ADMIN_TOKEN = "test-admin-token-123"


def write_config(
    path: Path, ports: dict[str, int], weights: dict[str, float], **extra: str
) -> Path:
    """An experiment YAML routing demo v1/v2/v3 workers on ``ports`` with ``weights``."""
    roles = {"champion": ("champion", "v1"), "challenger": ("challenger", "v2"),
             "canary": ("canary", "v3")}  # fmt: skip
    lines = [
        f"name: {extra.get('name', 'demo')}",
        "model: demo",
        "unit: {source: header, name: X-User-ID}",
        f"seed: {extra.get('seed', 'test-seed')}",
        "variants:",
    ]
    for name, weight in weights.items():
        role, version = roles[name]
        lines += [
            f"  - name: {name}",
            f"    role: {role}",
            f"    model_version: {version}",
            f"    endpoints: ['http://127.0.0.1:{ports[name]}']",
            f"    weight: {weight}",
            f"    timeout_ms: {extra.get('timeout_ms', 2000)}",
        ]
    if "tail" in extra:
        lines.append(extra["tail"])
    path.write_text("\n".join(lines) + "\n")
    return path


def start_gateway(
    config: Path | None,
    redis_url: str | None,
    *extra: str,
    log: IO[str] | None = None,
    **env: str,
) -> Child:
    """Start ``abgate gateway [extra...]`` as a real process on a free port; wait for /health.

    With ``log``, its output is copied there, each line prefixed by its name; without,
    it goes to a file whose errors are shown when the test fails.
    """
    port = free_port()
    argv = ["gateway", "--port", str(port), *extra]
    if config is not None:
        argv += ["--config", str(config)]
    environment = {"ABGATE_ADMIN_TOKEN": ADMIN_TOKEN, "ABGATE_LOG_LEVEL": "warning", **env}
    if redis_url:
        environment["REDIS_URL"] = redis_url
    output = None
    if log is None:
        output = _LOG_DIR / f"gateway-{port}.log"
        _TEST_LOGS.append(output)
    child = start_child(
        "gateway", abgate_argv(*argv), url=f"http://127.0.0.1:{port}", env=environment, log=log,
        output=output,
    )  # fmt: skip
    return _ready(child, "/health")


# Gateway output of the running test, kept so that a failing test shows the gateway's
# errors: a 500 or a lost outcome seen once in CI is then diagnosable from its report.
_LOG_DIR = Path(tempfile.mkdtemp(prefix="abgate-test-logs-"))
_TEST_LOGS: list[Path] = []
_ERROR_LINE = re.compile(r"\b(ERROR|CRITICAL)\b|Traceback|: error: ")


def gateway_errors(paths: list[Path], limit: int = 80) -> str:
    """The error lines of gateway logs, each with the 20 lines after it (its traceback)."""
    out: list[str] = []
    for path in paths:
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        keep = set()
        for i, line in enumerate(lines):
            if _ERROR_LINE.search(line):
                keep.update(range(i, min(i + 21, len(lines))))
        out += [f"{path.name}: {lines[i]}" for i in sorted(keep)]
    return "\n".join(out[-limit:])


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and _TEST_LOGS:
        errors = gateway_errors(_TEST_LOGS)
        if errors:
            report.sections.append(("gateway errors", errors))
    if report.when == "teardown":
        _TEST_LOGS.clear()


def pytest_sessionfinish(session: pytest.Session) -> None:
    for path in _LOG_DIR.glob("*.log"):
        path.unlink(missing_ok=True)
    _LOG_DIR.rmdir()


@pytest.fixture(scope="session")
def demo_workers(demo_registry: ModelRegistry) -> Iterator[dict[str, Child]]:
    """Real workers for champion (v1), challenger (v2) and canary (v3)."""
    children: dict[str, Child] = {}
    try:
        for name, version in (("champion", "v1"), ("challenger", "v2"), ("canary", "v3")):
            children[name] = start_worker(demo_registry, version)
        yield children
    finally:
        for child in children.values():
            child.stop()


def port_of(child: Child) -> int:
    """The port a child serves on."""
    assert child.url is not None
    return int(child.url.rsplit(":", 1)[1])
