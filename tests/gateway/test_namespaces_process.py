"""Two experiments on one model in disjoint namespaces, through `abgate apply` and a real gateway.

Real processes: Redis, three workers, the CLI and the gateway. Which
experiment a unit reaches is checked against GrowthBook's own SDK, unit by
unit; the shares against their binomial noise; what was recorded against
what was served.
"""

from __future__ import annotations

import collections
import math
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from growthbook import Experiment, GrowthBook

from abgate.processes import Child
from core.schema import parse_outcome_fields
from core.store import Store
from tests.conftest import port_of, start_gateway
from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
UNITS = 600
RANGES = {"left": (0.0, 0.45), "right": (0.45, 0.9)}  # [0.9, 1): in no experiment


def abgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abgate", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip


def experiment_yaml(name: str, ports: dict[str, int], namespace: str = "checkout") -> str:
    start, end = RANGES[name]
    second = ("challenger", "v2") if name == "left" else ("canary", "v3")
    return f"""\
name: {name}
model: demo
unit: {{source: header, name: X-User-ID}}
seed: seed-{name}
namespace: [{namespace}, {start}, {end}]
assignment: {{layout: growthbook}}
variants:
  - name: {name}-champion
    role: champion
    model_version: v1
    endpoints: ['http://127.0.0.1:{ports["champion"]}']
    weight: 60
  - name: {name}-{second[0]}
    role: {second[0]}
    model_version: {second[1]}
    endpoints: ['http://127.0.0.1:{ports[second[0]]}']
    weight: 40
"""


def sdk(name: str, unit: str) -> tuple[bool, int]:
    """(in the experiment, variation index) as a GrowthBook-instrumented app sees it."""
    start, end = RANGES[name]
    result = GrowthBook(attributes={"id": unit}).run(
        Experiment(
            key=f"seed-{name}", variations=[0, 1], weights=[0.6, 0.4], hashVersion=2,
            namespace=("checkout", start, end),
        )
    )  # fmt: skip
    return result.inExperiment, result.variationId


def within_noise(count: int, total: int, share: float, sigmas: float = 4.0) -> bool:
    return abs(count - total * share) <= sigmas * math.sqrt(total * share * (1 - share))


def test_two_experiments_in_disjoint_namespaces_each_get_their_share(
    tmp_path: Path, redis_url: str, demo_workers: dict[str, Child]
) -> None:
    ports = {name: port_of(child) for name, child in demo_workers.items()}
    env = {"REDIS_URL": redis_url, "ABGATE_REGISTRY_DIR": str(tmp_path / "registry")}
    left, right, clash = (tmp_path / f"{n}.yaml" for n in ("left", "right", "clash"))
    left.write_text(experiment_yaml("left", ports))
    right.write_text(experiment_yaml("right", ports))
    # The same range under another id: hashed independently, so it would overlap left.
    clash.write_text(experiment_yaml("right", ports, namespace="other"))
    for path in (left, right):
        applied = abgate("apply", str(path), env=env)
        assert applied.returncode == 0, applied.stderr
    refused = abgate("apply", str(clash), env=env)
    assert refused.returncode == 1
    assert f"{clash}:5: namespace.id: experiment left (stored version 1)" in refused.stderr
    assert Store(redis_url).get_config("right").version == 1  # nothing stored

    gateway = start_gateway(None, redis_url)
    try:
        served: dict[str, str] = {}
        for i in range(UNITS):
            unit = f"user-{i}" if i % 5 else f"😀 user-{i} \U00020000"
            response = requests.post(
                gateway.url + ("/predict" if i % 2 else "/v1/demo/predict"),
                json={"features": ROW},
                headers={"X-User-ID": unit.encode()},  # UTF-8, as an app sends it
                timeout=30,
            )
            assert response.status_code == 200, response.text
            served[unit] = response.headers["X-Variant"]

        per_experiment: collections.Counter[str] = collections.Counter()
        experiment_of: dict[str, str] = {}
        for unit, variant in served.items():
            in_left, in_right = sdk("left", unit), sdk("right", unit)
            assert not (in_left[0] and in_right[0])
            if in_left[0] or in_right[0]:
                name, (_, index) = ("left", in_left) if in_left[0] else ("right", in_right)
                second = "challenger" if name == "left" else "canary"
                assert variant == [f"{name}-champion", f"{name}-{second}"][index], unit
                experiment_of[unit] = name
            else:  # outside every namespace: the first experiment's champion, unrecorded
                assert variant == "left-champion", unit
                experiment_of[unit] = "none"
        per_experiment.update(experiment_of.values())
        for name, share in (("left", 0.45), ("right", 0.45), ("none", 0.1)):
            assert within_noise(per_experiment[name], UNITS, share), per_experiment

        # Sticky: a unit asked again reaches the same experiment and variant.
        asked_again = list(served)[:50]
        for unit in asked_again:
            again = requests.post(
                gateway.url + "/predict", json={"features": ROW},
                headers={"X-User-ID": unit.encode()}, timeout=30,
            )  # fmt: skip
            assert again.headers["X-Variant"] == served[unit]

        def recorded() -> dict[str, int] | None:
            counts = {
                name: sum(
                    v.requests for v in parse_outcome_fields(Store(redis_url).totals(name)).values()
                )
                for name in ("left", "right")
            }
            expected = {
                name: per_experiment[name] + sum(experiment_of[u] == name for u in asked_again)
                for name in ("left", "right")
            }
            return counts if counts == expected else None

        assert wait_for(recorded), "recorded requests differ from what each experiment served"
    finally:
        gateway.stop()
