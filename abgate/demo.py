"""The main job behind ``make demo``.

Starts a real Redis, the three demo model versions (trained when the registry
lacks them) behind one worker process each, and the gateway; sends the classic
client request through it; drives traffic with feedback (the true labels of
the demo task) and shows what the gateway recorded per variant. The canary
ramp and the significance report join as they land.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from abgate.redis_server import free_port
from abgate.settings import Settings

__all__ = ["run_demo"]

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "experiments" / "demo.yaml"
_CLASSIC_ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def _config_on_free_ports(source: Path, target: Path) -> Path:
    """The demo config with every local endpoint moved to a free port (no clashes)."""
    from experiments.loader import dump_experiment, load_experiment

    config = load_experiment(source)
    data = config.model_dump(mode="json")
    for group in ("variants", "shadows"):
        for entry in data.get(group) or []:
            entry["endpoints"] = [f"http://127.0.0.1:{free_port()}" for _ in entry["endpoints"]]
    from experiments.config import ExperimentConfig

    target.write_text(dump_experiment(ExperimentConfig.model_validate(data)))
    return target


def run_demo(settings: Settings, *, registry_dir: str | None = None) -> int:
    """Run the demo; return the exit code."""
    import httpx

    from abgate.loadgen import run_load
    from abgate.status import render_status
    from abgate.store import Store
    from abgate.up import running_stack
    from model_workers.demo_versions import ensure_demo_versions
    from model_workers.registry import ModelRegistry

    started = time.monotonic()
    registry = ModelRegistry(Path(registry_dir) if registry_dir else settings.registry_dir)
    print(f"== model registry: {registry.root.resolve()}")
    for version, meta in ensure_demo_versions(registry).items():
        metrics = meta["holdout_metrics"]
        print(
            f"   demo {version}: holdout accuracy {metrics['accuracy']:.4f}, "
            f"ROC AUC {metrics['roc_auc']:.4f}, sha256 {meta['sha256'][:12]}"
        )
    with tempfile.TemporaryDirectory(prefix="abgate-demo-") as tmp:
        config = _config_on_free_ports(DEMO_CONFIG, Path(tmp) / "demo.yaml")
        demo_settings = settings.model_copy(update={"state_dir": Path(tmp) / "state"})
        with running_stack(demo_settings, config, registry_dir=registry.root, log=False) as stack:
            print(f"== gateway {stack.gateway_url}, Redis {stack.redis_url}")
            answer = httpx.post(f"{stack.gateway_url}/predict", json={"features": _CLASSIC_ROW})
            print(f"== classic client through the gateway: {answer.json()}")
            print("== traffic: 10 s at 300 requests/s, every answer labelled through /feedback")
            result = asyncio.run(run_load(stack.gateway_url, rate=300, duration_s=10))
            print(result.summary())
            time.sleep(0.3)  # the recorder flushes every 50 ms
            print("== what the gateway recorded (abgate status):")
            print(render_status(Store(stack.redis_url), "demo"))
    print(f"== demo finished in {time.monotonic() - started:.1f}s")
    return 0
