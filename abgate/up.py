"""``abgate up``: Redis, one worker per variant, and the gateway, in one command.

Workers are started on the ports the experiment config names for them, so the
config stays the single source of upstream URLs. Ctrl-C (or SIGTERM) stops
everything that was started, each by its own pid.
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from abgate.processes import Child, abgate_argv, start_child, wait_http_ok
from abgate.redis_server import free_port, redis_for
from core.errors import AbgateError, BadRequest
from core.settings import Settings

__all__ = ["Stack", "running_stack"]


@dataclass
class Stack:
    """What ``up`` started and where it answers."""

    redis_url: str
    gateway_url: str
    admin_token: str
    config_path: Path
    children: list[Child] = field(default_factory=list)


def _local_port(url: str) -> int:
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        raise BadRequest(f"`abgate up` starts workers only for local endpoints, not {url}")
    return parts.port


@contextlib.contextmanager
def running_stack(
    settings: Settings,
    config_path: Path,
    *,
    gateway_port: int | None = None,
    registry_dir: Path | None = None,
    log: bool = True,
) -> Iterator[Stack]:
    """Start Redis (unless REDIS_URL), workers and the gateway; stop them on exit."""
    from core.store import Store
    from experiments.loader import load_experiment
    from model_workers.demo_versions import ensure_demo_versions
    from model_workers.registry import ModelRegistry
    from recorded.drift import store_drift_references

    config_path = config_path.absolute()
    config = load_experiment(config_path)
    registry = ModelRegistry(registry_dir or settings.registry_dir)
    if config.model == "demo":
        ensure_demo_versions(registry)
    token = settings.admin_token or secrets.token_urlsafe(24)
    out = sys.stdout if log else None
    data_dir = settings.state_dir / "redis"
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(
            redis_for(settings.redis_url, data_dir=data_dir, persistence=True)
        )
        references = Store(redis_url)
        try:
            for missing in store_drift_references(references, config, registry):
                print(f"note: no drift checks for it: {missing}", file=sys.stderr)
        finally:
            references.close()
        children: list[Child] = []
        stack.callback(lambda: [c.stop() for c in reversed(children)])
        env = {
            "REDIS_URL": redis_url,
            "ABGATE_ADMIN_TOKEN": token,
            "ABGATE_DRIFT_SAMPLE_RATE": str(settings.drift_sample_rate),
        }
        for variant in [*config.variants, *config.shadows]:
            for url in variant.endpoints:
                port = _local_port(url)
                children.append(
                    start_child(
                        f"{variant.name}",
                        abgate_argv(
                            "worker", "--model", config.model, "--version", variant.model_version,
                            "--port", str(port), "--registry", str(registry.root),
                        ),
                        url=url.rstrip("/"),
                        env=env,
                        log=out,
                    )
                )  # fmt: skip
        for child in children:
            wait_http_ok(f"{child.url}/ready", child=child, timeout=60)
        port = gateway_port or free_port()
        gateway = start_child(
            "gateway",
            abgate_argv("gateway", "--port", str(port), "--config", str(config_path)),
            url=f"http://127.0.0.1:{port}",
            env=env,
            log=out,
        )
        children.append(gateway)
        wait_http_ok(f"{gateway.url}/health", child=gateway, timeout=60)
        yield Stack(redis_url, gateway.url or "", token, config_path, children)


def run_up(settings: Settings, config_path: Path, gateway_port: int | None) -> int:
    """Run the stack in the foreground until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        with running_stack(settings, config_path, gateway_port=gateway_port) as stack:
            print(f"abgate is up: gateway {stack.gateway_url}  (Redis {stack.redis_url})")
            print(
                f"  predict:  curl -s {stack.gateway_url}/predict -H "
                "'content-type: application/json' "
                "-d '{\"features\": [0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1.0]}'"
            )
            print(f"  docs:     {stack.gateway_url}/docs   metrics: {stack.gateway_url}/metrics")
            if not settings.admin_token:
                print(f"  admin token (generated): {stack.admin_token}")
            print("Ctrl-C stops everything.")
            while not stop.wait(0.5):
                dead = [c for c in stack.children if not c.alive()]
                if dead:
                    raise AbgateError(
                        f"{dead[0].name} exited with code {dead[0].process.returncode}"
                    )
    except KeyboardInterrupt:
        pass
    print("stopped", file=sys.stderr)
    return 0
