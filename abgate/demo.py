"""The main job behind ``make demo``.

Today it runs the foundation end to end: a real Redis, the three demo model
versions (trained when the registry lacks them), one worker process per
version, and one classic predict call to each. Later stages add the gateway,
traffic, the canary ramp and the significance report.
"""

from __future__ import annotations

import contextlib
import sys
import time

from abgate.processes import Child, abgate_argv, start_child, wait_http_ok
from abgate.redis_server import free_port, redis_for
from abgate.settings import Settings

__all__ = ["run_demo"]

_ROLES = {"v1": "champion", "v2": "challenger", "v3": "canary"}
_CLASSIC_ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def run_demo(settings: Settings, *, registry_dir: str | None = None) -> int:
    """Run the demo; return the exit code."""
    import httpx

    from model_workers.demo_versions import ensure_demo_versions
    from model_workers.registry import ModelRegistry

    registry = ModelRegistry(registry_dir or settings.registry_dir)
    started = time.monotonic()
    print(f"== model registry: {registry.root.resolve()}")
    versions = ensure_demo_versions(registry)
    for version, meta in versions.items():
        metrics = meta["holdout_metrics"]
        print(
            f"   demo {version} ({_ROLES.get(version, '?'):>10}): holdout accuracy "
            f"{metrics['accuracy']:.4f}, ROC AUC {metrics['roc_auc']:.4f}, "
            f"sha256 {meta['sha256'][:12]}"
        )
    with contextlib.ExitStack() as stack:
        redis_url = stack.enter_context(redis_for(settings.redis_url))
        print(f"== redis: {redis_url}{' (embedded)' if not settings.redis_url else ''}")
        children: list[Child] = []
        stack.callback(lambda: [child.stop() for child in reversed(children)])
        for version in versions:
            port = free_port()
            child = start_child(
                f"worker-{version}",
                abgate_argv(
                    "worker", "--model", "demo", "--version", version, "--port", str(port),
                    "--registry", str(registry.root),
                ),
                url=f"http://127.0.0.1:{port}",
                log=sys.stdout,
            )  # fmt: skip
            children.append(child)
        for child in children:
            wait_http_ok(f"{child.url}/ready", child=child)
            answer = httpx.post(f"{child.url}/predict", json={"features": _CLASSIC_ROW}).json()
            print(
                f"== {child.name} at {child.url}: prediction {answer['prediction']}, "
                f"probability {[round(p, 3) for p in answer['probability']]}"
            )
    print(f"== demo finished in {time.monotonic() - started:.1f}s")
    return 0
