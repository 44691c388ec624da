"""The main job behind ``make demo``.

1. Trains the demo versions when the registry lacks them (champion v1, better
   challenger v2, worse canary v3) and starts a real Redis, one worker per
   version and the gateway.
2. Sends the classic client request through the gateway, then 10 s of traffic
   with the true label posted back for every answer; prints what was recorded
   and writes the significance report (Markdown, HTML, JSON).
3. Sends 10 s more with feature f3 shifted (``abgate loadgen --shift f3:2.5``)
   and prints the data-drift verdict, which names f3 with its PSI.
4. Ramps the better model and then the worse one, with traffic flowing: each
   starts in a shadow phase (mirrored, 0 % of users) judged by paired tests on
   the labels. The worse one is rolled back there, having served no user (the
   count is read from Redis); the better one passes, is exposed at 10 % and
   50 %, and is promoted. Prints each verdict and report.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from abgate.redis_server import free_port
from core.settings import Settings
from experiments.demo_plan import DEMO_CONFIG, demo_ramp_config

__all__ = ["run_demo"]

_CLASSIC_ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def _config_on_free_ports(source: Path, target: Path) -> Path:
    """The demo config with every local endpoint moved to a free port (no clashes)."""
    from experiments.config import ExperimentConfig
    from experiments.loader import dump_experiment, load_experiment

    data = load_experiment(source).model_dump(mode="json")
    for group in ("variants", "shadows"):
        for entry in data.get(group) or []:
            entry["endpoints"] = [f"http://127.0.0.1:{free_port()}" for _ in entry["endpoints"]]
    target.write_text(dump_experiment(ExperimentConfig.model_validate(data)))
    return target


@contextmanager
def _traffic(url: str, rate: float) -> Iterator[list[Any]]:
    from abgate.loadgen import run_load

    stop = threading.Event()
    results: list[Any] = []
    thread = threading.Thread(
        target=lambda: results.append(
            asyncio.run(run_load(url, rate=rate, duration_s=600, stop=stop, seed=len(results)))
        ),
        daemon=True,
    )
    thread.start()
    try:
        yield results
    finally:
        stop.set()
        thread.join(timeout=30)


def run_demo(settings: Settings, *, registry_dir: str | None = None) -> int:
    """Run the demo; return the exit code."""
    import httpx

    from abgate.loadgen import run_load
    from abgate.up import running_stack
    from analysis.decisions import analyze
    from core.schema import decode_stats
    from core.store import Store
    from model_workers.demo_versions import ensure_demo_versions
    from model_workers.registry import ModelRegistry
    from ramp.controller import RampController
    from recorded.drift import load_experiment_drift
    from recorded.reporting import experiment_data, recorded_shadows, write_report
    from recorded.status import drift_lines, render_status

    started = time.monotonic()
    registry = ModelRegistry(Path(registry_dir) if registry_dir else settings.registry_dir)
    reports = Path("reports").absolute()  # beside models/ and var/, in the directory it runs in
    print(f"== model registry: {registry.root.resolve()}")
    for version, meta in ensure_demo_versions(registry).items():
        metrics = meta["holdout_metrics"]
        print(
            f"   demo {version}: holdout accuracy {metrics['accuracy']:.4f}, "
            f"ROC AUC {metrics['roc_auc']:.4f}, sha256 {meta['sha256'][:12]}"
        )
    outcomes = []
    with tempfile.TemporaryDirectory(prefix="abgate-demo-") as tmp:
        config_path = _config_on_free_ports(DEMO_CONFIG, Path(tmp) / "demo.yaml")
        # Half the requests are sampled for drift (default 5 %), so that 10-s phases
        # give every variant the samples a drift verdict needs.
        demo_settings = settings.model_copy(
            update={"state_dir": Path(tmp) / "state", "drift_sample_rate": 0.5}
        )
        with running_stack(
            demo_settings, config_path, registry_dir=registry.root, log=False
        ) as stack:
            store = Store(stack.redis_url, cluster=settings.redis_cluster)
            print(f"== gateway {stack.gateway_url}, Redis {stack.redis_url}")
            answer = httpx.post(f"{stack.gateway_url}/predict", json={"features": _CLASSIC_ROW})
            print(f"== classic client through the gateway: {answer.json()}")

            print("== traffic: 10 s at 300 requests/s, every answer labelled through /feedback")
            result = asyncio.run(run_load(stack.gateway_url, rate=300, duration_s=10))
            print(result.summary())
            time.sleep(0.3)  # the recorder flushes every 50 ms
            print("== what the gateway recorded (abgate status):")
            print(render_status(store, "demo"))
            data = experiment_data(store, "demo")
            paths = write_report(data, reports, "demo-report")
            print("== significance report:")
            for verdict in analyze(data).verdicts:
                print(
                    f"   {verdict.variant}: {verdict.action.upper()} ({verdict.rule}) "
                    f"{verdict.reason}"
                )
            print(f"   {paths['md']}\n   {paths['html']}\n   {paths['json']}")

            print("== data drift: 10 s more with feature f3 shifted by +2.5 (--shift f3:2.5)")
            asyncio.run(run_load(stack.gateway_url, rate=300, duration_s=10, shift={3: 2.5}))
            time.sleep(0.3)
            for line in drift_lines(load_experiment_drift(store, "demo")):
                print(f"   {line}")

            from experiments.loader import load_experiment

            base = load_experiment(config_path)
            for version, story in (("v2", "the better model"), ("v3", "the worse model")):
                ramp_config = demo_ramp_config(base, version)
                store.put_config(
                    "demo",
                    ramp_config.model_dump(mode="json"),
                    actor="demo",
                    action="apply",
                    reason=f"ramp {version} as a canary",
                )
                time.sleep(0.3)  # gateways follow over pub/sub
                print(
                    f"== ramp of {version} ({story}): a shadow phase (0 % of users), "
                    "then steps 10 → 50 %, then promotion"
                )
                before = store.totals("demo")  # v3 served users in the A/B phase above
                # The decisions go to this file, one per check; the console shows the live display.
                decision_log = reports / f"ramp-{version}.log"
                decision_log.unlink(missing_ok=True)
                with _traffic(stack.gateway_url, rate=300):
                    controller = RampController(
                        store,
                        ramp_config,
                        out_dir=reports,
                        report_stem=f"ramp-{version}-report",
                        decision_log=decision_log,
                    )
                    outcome = controller.run()
                time.sleep(0.3)  # the last flush
                served = (decode_stats(store.totals("demo")) - decode_stats(before)).variants()
                users = served["canary"].requests if "canary" in served else 0
                shadow = recorded_shadows(store, "demo", baseline=before).get("canary")
                labelled = shadow.pairs("accuracy").n if shadow is not None else 0
                print(
                    f"   {version}: {outcome.action.upper()} by rule {outcome.rule}; "
                    f"requests served to users by {version} during its ramp: {users} "
                    f"(from Redis); labelled requests judged in its shadow phase: {labelled}"
                )
                outcomes.append((version, outcome, users))
    print("== verdicts:")
    for version, outcome, _ in outcomes:
        print(f"   {version}: {outcome.action.upper()} ({outcome.reason})")
        print(f"       report: {outcome.reports['html']}")
    print(f"== demo finished in {time.monotonic() - started:.1f}s")
    # v2 promoted through its exposed steps; v3 rolled back in its shadow phase, unseen.
    ended = {version: (outcome.action, outcome.rule, users) for version, outcome, users in outcomes}
    v2_promoted = ended.get("v2", ("",))[0] == "promote"
    v3_unseen = ended.get("v3") == ("rollback", "shadow_harm", 0)
    return 0 if v2_promoted and v3_unseen else 1
