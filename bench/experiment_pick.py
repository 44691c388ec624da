"""What finding the experiment and variant of a request costs the hot path, in process.

    python -m bench.experiment_pick [--requests 200000] [--repeat 7]

Times the steps ``HotPath.predict`` takes before calling a worker: the
model's route, the unit (a header), the experiment of the unit and its
variant: one experiment on the model (the common case, no namespace hash)
and two experiments in disjoint namespaces of one model (one more hash per
request), each with ASCII and with non-ASCII unit ids (an emoji: UTF-16
code units are hashed). Prints
the median and smallest CPU time per request (process time, so that other
processes on a busy machine count less) over the repeats.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from experiments.config import ExperimentConfig
from gateway.assign import unit_of
from gateway.live import LiveExperiments

__all__ = ["main"]


def _config(name: str, namespace: dict[str, Any] | None) -> ExperimentConfig:
    data: dict[str, Any] = {
        "name": name,
        "model": "demo",
        "unit": {"source": "header", "name": "X-User-ID"},
        "variants": [
            {"name": n, "role": r, "model_version": v, "endpoints": [u], "weight": w}
            for n, r, v, u, w in (
                ("champion", "champion", "v1", "http://127.0.0.1:9", 80),
                ("challenger", "challenger", "v2", "http://127.0.0.1:10", 10),
                ("canary", "canary", "v3", "http://127.0.0.1:11", 10),
            )
        ],
    }
    if namespace is not None:
        data["namespace"] = namespace
    return ExperimentConfig.model_validate(data)


def _experiments(namespaced: bool) -> LiveExperiments:
    experiments = LiveExperiments()
    if namespaced:
        experiments.install(_config("left", {"id": "demo", "start": 0, "end": 0.5}), 1)
        experiments.install(_config("right", {"id": "demo", "start": 0.5, "end": 1}), 1)
    else:
        experiments.install(_config("only", None), 1)
    return experiments


def _picker(experiments: LiveExperiments) -> Callable[[dict[bytes, bytes]], object]:
    payload = {"features": [0.1] * 10}

    def pick(headers: dict[bytes, bytes]) -> object:
        route = experiments.for_model("demo")
        unit = unit_of(route.first, payload, headers, "rid")
        live = route.only
        if live is None:
            live = route.pick(unit) or route.first
        return live.assigner.assign(unit)

    return pick


def _time(pick: Callable[[dict[bytes, bytes]], object], units: list[str], n: int) -> float:
    headers = [{b"x-user-id": unit.encode()} for unit in units]
    count = len(headers)
    started = time.process_time_ns()
    for i in range(n):
        pick(headers[i % count])
    return (time.process_time_ns() - started) / n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    ascii_units = [f"user-{i}" for i in range(1000)]
    other_units = [f"usér-{i}-😀" for i in range(1000)]
    cases = [
        ("one experiment, ASCII ids", _picker(_experiments(False)), ascii_units),
        ("one experiment, non-ASCII ids", _picker(_experiments(False)), other_units),
        ("two in namespaces, ASCII ids", _picker(_experiments(True)), ascii_units),
        ("two in namespaces, non-ASCII ids", _picker(_experiments(True)), other_units),
    ]
    for label, pick, units in cases:
        runs = [_time(pick, units, args.requests) for _ in range(args.repeat)]
        print(f"{label:34} median {statistics.median(runs):7.0f} ns  min {min(runs):7.0f} ns")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
