"""Drift sampling on the hot path: 1-in-N, bisect into reference bins, fields that parse back."""

from __future__ import annotations

from pathlib import Path

import pytest

from abgate.processes import Child
from core.schema import parse_drift_fields
from experiments.config import ExperimentConfig
from gateway.drift_sampling import VariantBins, sample_every, variant_bins
from gateway.outcomes import OutcomeAggregator
from model_workers.registry import ModelRegistry

REFERENCE = {
    "features": [
        {"feature": "f0", "edges": [-1.0, 0.0, 1.0], "proportions": [0.25, 0.25, 0.25, 0.25]},
        {"feature": "f1", "edges": [10.0], "proportions": [0.5, 0.5]},
    ],
    "predictions": {
        "classes": [0, 1],
        "class_proportions": [0.6, 0.4],
        "score_edges": [0.2, 0.5, 0.8],
        "score_proportions": [0.25, 0.25, 0.25, 0.25],
    },
}


def config(versions: dict[str, str]) -> ExperimentConfig:
    weights = {"champion": 90, "canary": 10}
    ports = {"champion": 9001, "canary": 9002}
    return ExperimentConfig.model_validate(
        {
            "name": "demo",
            "model": "demo",
            "variants": [
                {
                    "name": name,
                    "role": name,
                    "model_version": version,
                    "endpoints": [f"http://127.0.0.1:{ports[name]}"],
                    "weight": weights[name],
                }
                for name, version in versions.items()
            ],
        }
    )


@pytest.mark.parametrize(
    ("rate", "every"), [(0.0, 0), (0.05, 20), (0.1, 10), (0.3, 3), (1.0, 1), (0.0001, 10000)]
)
def test_rate_becomes_one_in_n(rate: float, every: int) -> None:
    assert sample_every(rate) == every


def bins() -> VariantBins:
    found = variant_bins(config({"champion": "v1", "canary": "v2"}), {"v1": REFERENCE})
    assert found is not None and set(found) == {"champion"}  # v2 has no reference
    return found["champion"]


def test_values_fall_in_the_bins_bisect_right_gives() -> None:
    b = bins()
    # -1.0 sits on an edge: bisect_right puts it above, like numpy.searchsorted(side="right")
    fields = b.fields_for([-1.0, 12.5], {"prediction": 1, "probability": [0.25, 0.75]})
    assert fields == [
        "champion:drift:v1:x:0:1",
        "champion:drift:v1:x:1:1",
        "champion:drift:v1:class:1",
        "champion:drift:v1:score:2",
    ]
    assert b.fields_for([-5.0, 0.0], {"prediction": 0, "probability": [0.9, 0.1]}) == [
        "champion:drift:v1:x:0:0",
        "champion:drift:v1:x:1:0",
        "champion:drift:v1:class:0",
        "champion:drift:v1:score:0",
    ]


def test_unknown_classes_and_odd_answers_add_no_field() -> None:
    b = bins()
    assert b.fields_for([0.5, 1.0], {"prediction": 7, "probability": "high"}) == [
        "champion:drift:v1:x:0:2",
        "champion:drift:v1:x:1:0",
    ]
    assert b.fields_for([0.5], {"prediction": True}) == ["champion:drift:v1:x:0:2"]


def test_no_reference_no_sampling() -> None:
    assert variant_bins(config({"champion": "v1", "canary": "v2"}), {}) is None


def test_sampled_fields_parse_back_into_counts() -> None:
    b = bins()
    aggregator = OutcomeAggregator(60)
    rows = [[-2.0, 0.0], [-0.5, 11.0], [0.5, 11.0], [3.0, 11.0], [3.5, 9.0]]
    for row in rows:
        fields = b.fields_for(row, {"prediction": 1, "probability": [0.4, 0.6]})
        delta = aggregator.delta("demo", 120.0)
        for name in fields:
            delta[name] += 1
    (stats,) = aggregator.drain().values()
    stats["champion:requests"] = 5  # other fields in the same hash are left alone
    counts = parse_drift_fields(stats)[("champion", "v1")]
    assert counts.features == {0: [1, 1, 1, 2], 1: [2, 3]}
    assert counts.classes == {1: 5}
    assert counts.scores == {2: 5}
    assert counts.samples == 5


def test_a_promoted_variant_is_judged_on_its_new_versions_samples_only() -> None:
    from recorded.drift import current_counts

    stats = {
        "champion:drift:v1:x:0:0": 40,  # served by v1 before the promotion
        "champion:drift:v2:x:0:3": 7,
        "canary:drift:v2:x:0:1": 5,
    }
    parsed = parse_drift_fields(stats)
    assert set(parsed) == {("champion", "v1"), ("champion", "v2"), ("canary", "v2")}
    promoted = config({"champion": "v2", "canary": "v3"})
    current = current_counts(promoted, parsed)
    assert set(current) == {"champion"}  # the canary now serves v3: nothing sampled yet
    assert current["champion"].features == {0: [0, 0, 0, 7]}


@pytest.mark.integration
def test_the_hot_path_samples_one_request_in_n(
    tmp_path: Path, worker_v1: Child, demo_registry: ModelRegistry
) -> None:
    import asyncio

    import orjson

    from experiments.loader import load_experiment
    from gateway.hotpath import HotPath
    from gateway.live import LiveExperiments
    from gateway.recorder import Recorder
    from recorded.drift import references_from_registry
    from tests.conftest import port_of, write_config

    path = write_config(tmp_path / "sampling.yaml", {"champion": port_of(worker_v1)},
                        {"champion": 100})  # fmt: skip
    experiment = load_experiment(path)
    references, missing = references_from_registry(experiment, demo_registry)
    assert not missing
    experiments = LiveExperiments()
    experiments.drift_references["demo"] = references
    experiments.install(experiment, 1)
    recorder = Recorder(None)
    hotpath = HotPath(experiments, recorder, None, drift_sample_rate=0.25)
    rows = [[float(i % 7) - 3.0] * 10 for i in range(40)]

    async def send() -> list[int]:
        try:
            answers = [
                await hotpath.predict(orjson.dumps({"features": row}), {}, None) for row in rows
            ]
            bad = await hotpath.predict(b'{"features": [1.0]}', {}, None)  # 400: never sampled
            return [a.status for a in [*answers, bad]]
        finally:
            for pool in experiments.pools.values():
                pool.close()

    statuses = asyncio.run(send())
    assert statuses == [200] * 40 + [400]
    counts = parse_drift_fields(*(dict(d) for d in recorder.aggregator.drain().values()))
    sampled = counts[("champion", "v1")]
    assert sampled.samples == 10  # 1 in round(1 / 0.25) = 4 of the 40 answered
    assert sum(sampled.classes.values()) == 10 and sum(sampled.scores.values()) == 10
