from __future__ import annotations

import subprocess
import sys

import pytest

from model_workers.demo_versions import ensure_demo_versions
from model_workers.registry import ModelRegistry
from model_workers.training import TrainingParams


def _train_in_fresh_process(root, version: str, seed: int) -> str:
    # Separate interpreters: object ids and timestamps differ, the sha256 must not.
    subprocess.run(
        [sys.executable, "-m", "abgate", "train", "--version", version, "--seed", str(seed),
         "--n-estimators", "5", "--max-depth", "2", "--n-samples", "2000", "--registry", str(root)],
        check=True, capture_output=True,
    )  # fmt: skip
    return str(ModelRegistry(root).metadata("demo", version)["sha256"])


def test_same_seed_same_sha256(tmp_path) -> None:
    first = _train_in_fresh_process(tmp_path / "a", "v1", seed=3)
    second = _train_in_fresh_process(tmp_path / "b", "v1", seed=3)
    other = _train_in_fresh_process(tmp_path / "c", "v1", seed=4)
    assert first == second
    assert first != other


def test_demo_versions_rank_as_the_demo_needs(demo_registry: ModelRegistry) -> None:
    accuracy = {
        m["version"]: m["holdout_metrics"]["accuracy"] for m in demo_registry.versions("demo")
    }
    assert set(accuracy) == {"v1", "v2", "v3"}
    assert accuracy["v2"] > accuracy["v1"] + 0.03, accuracy
    assert accuracy["v3"] < accuracy["v1"] - 0.03, accuracy


def test_ensure_demo_versions_keeps_existing(demo_registry: ModelRegistry) -> None:
    before = {m["version"]: m["sha256"] for m in demo_registry.versions("demo")}
    after = ensure_demo_versions(demo_registry)
    assert {v: m["sha256"] for v, m in after.items()} == before


@pytest.mark.parametrize(
    "kwargs",
    [{"n_estimators": 0}, {"max_depth": 0}, {"label_noise": 1.0}, {"n_samples": 10},
     {"learning_rate": 0.0}],
)  # fmt: skip
def test_bad_training_params_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        TrainingParams(**kwargs)
