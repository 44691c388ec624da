"""What a scrape of the gateway's ``/metrics`` costs, in process.

    python -m bench.metrics_scrape [--experiments 4] [--processes 1,2,4] [--repeat 7]

Fills a recorder as traffic would (each experiment with a champion, a canary
and a shadow, every latency bucket used) and times rendering the exposition
text: one process alone, then (where the code has it) the process answering a
scrape of ``--workers N`` and adding up the figures its N-1 siblings published
in a shared directory. Also times one publication (what each process does once
a second). Prints the median and smallest wall time per call over the repeats.
Nothing here runs per request: requests pay nothing for metrics.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from collections.abc import Callable, Sequence

from experiments.config import ExperimentConfig
from gateway.hotpath import HotPath
from gateway.live import LiveExperiments
from gateway.recorder import Recorder

__all__ = ["main"]


def _config(name: str) -> ExperimentConfig:
    variants = [("champion", 80, "v1"), ("canary", 20, "v2")]
    return ExperimentConfig.model_validate(
        {
            "name": name,
            "model": "demo",
            "variants": [
                {
                    "name": variant,
                    "role": variant,
                    "model_version": version,
                    "endpoints": [f"http://127.0.0.1:{9001 + i}"],
                    "weight": weight,
                }
                for i, (variant, weight, version) in enumerate(variants)
            ],
        }
    )


def _gateway(experiments_count: int) -> tuple[LiveExperiments, Recorder, HotPath]:
    experiments = LiveExperiments()
    recorder = Recorder(None)
    now = time.time()
    for e in range(experiments_count):
        name = f"exp{e}"
        experiments.install(_config(name), 1)
        for i in range(2000):
            recorder.record_request(name, "canary" if i % 5 == 0 else "champion", "v1", 1,
                                    ok=i % 50 != 0, client_error=False, latency_ms=(i % 400) * 2.5,
                                    fallback=False, request_id=f"{name}-{i}", prediction=0,
                                    error=None, ts=now)  # fmt: skip
            recorder.record_shadow(name, "shadow", ok=True, agreed=i % 9 != 0)
    return experiments, recorder, HotPath(experiments, recorder, None)


def _time(call: Callable[[], object], repeat: int, calls: int) -> tuple[float, float]:
    runs = []
    for _ in range(repeat):
        started = time.perf_counter_ns()
        for _ in range(calls):
            call()
        runs.append((time.perf_counter_ns() - started) / calls / 1000)
    return statistics.median(runs), min(runs)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the cost of one scrape (µs), alone and under ``--workers N``."""
    parser = argparse.ArgumentParser(prog="python -m bench.metrics_scrape")
    parser.add_argument("--experiments", type=int, default=4)
    parser.add_argument("--processes", default="1,2,4")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50)
    args = parser.parse_args(argv)
    experiments, recorder, hotpath = _gateway(args.experiments)
    try:
        from gateway.metrics import GatewayMetrics
    except ImportError:  # before the collector: the hand-rendered text, one process only
        from gateway.metrics import render_metrics

        median, best = _time(lambda: render_metrics(experiments, recorder, hotpath),
                             args.repeat, args.calls)  # fmt: skip
        print(f"scrape, 1 process (hand-rendered): median {median:.0f} µs, best {best:.0f} µs")
        return 0
    from gateway import metrics_dir

    alone = GatewayMetrics(experiments, recorder, hotpath)
    size = len(alone.render())
    median, best = _time(alone.render, args.repeat, args.calls)
    print(f"scrape, 1 process: median {median:.0f} µs, best {best:.0f} µs ({size} bytes)")
    for count in (int(n) for n in args.processes.split(",") if int(n) > 1):
        shared = metrics_dir.prepare(None)  # where the gateway puts it: shared memory
        try:
            sibling = alone.own()
            for pid in range(1, count):  # the siblings' figures, as they publish them
                sibling.pid = os.getpid() + 100_000 + pid
                metrics_dir.publish(shared, sibling)
            metrics = GatewayMetrics(experiments, recorder, hotpath, directory=shared)
            median, best = _time(metrics.render, args.repeat, args.calls)
            print(f"scrape, {count} processes: median {median:.0f} µs, best {best:.0f} µs")
            median, best = _time(metrics.publish, args.repeat, args.calls)
            print(f"  one publication (each process, once a second): median {median:.0f} µs")
        finally:
            shutil.rmtree(shared)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
