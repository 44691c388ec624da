from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
import skops.io as sio

from core.errors import ArtifactIntegrityError, BadRequest, NotFound
from model_workers.registry import ARTIFACT_NAME, ModelRegistry, sha256_file
from model_workers.training import TrainingParams, demo_dataset, train

SMALL = TrainingParams(n_estimators=5, max_depth=2, seed=7, n_samples=2000)


@pytest.fixture
def registry(tmp_path) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    trained = train(SMALL)
    registry.register("demo", "v1", trained.estimator, trained.metadata)
    return registry


def test_round_trip_predicts_the_same(registry: ModelRegistry) -> None:
    loaded = registry.load("demo", "v1")
    fresh = train(SMALL).estimator
    x = demo_dataset(2000).x_holdout
    np.testing.assert_array_equal(loaded.estimator.predict_proba(x), fresh.predict_proba(x))
    assert loaded.n_features == 10


def test_metadata_has_what_the_registry_promises(registry: ModelRegistry) -> None:
    meta = registry.metadata("demo", "v1")
    directory = registry.version_dir("demo", "v1")
    assert meta["sha256"] == sha256_file(directory / ARTIFACT_NAME)
    assert meta["version"] == "v1"
    assert meta["features"] == {"count": 10, "names": [f"f{i}" for i in range(10)]}
    assert set(meta["holdout_metrics"]) >= {"accuracy", "roc_auc", "log_loss"}
    assert meta["training_params"]["n_estimators"] == 5
    assert len(meta["training_data"]["fingerprint"]) == 64
    assert {"scikit-learn", "numpy", "skops", "python"} <= set(meta["libraries"])
    reference = meta["reference_distribution"]
    assert len(reference) == 10
    for feature in reference:
        assert len(feature["proportions"]) == len(feature["edges"]) + 1
        assert sum(feature["proportions"]) == pytest.approx(1.0)
        assert feature["edges"] == sorted(feature["edges"])


def test_tampered_artifact_is_refused(registry: ModelRegistry) -> None:
    artifact = registry.version_dir("demo", "v1") / ARTIFACT_NAME
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ArtifactIntegrityError, match="sha256"):
        registry.load("demo", "v1")


def test_untrusted_type_is_refused_even_with_matching_sha(registry: ModelRegistry) -> None:
    # A foreign artifact whose sha256 was rewritten to match: the type check must still stop it.
    from sklearn.ensemble import RandomForestClassifier

    directory = registry.version_dir("demo", "v1")
    x = demo_dataset(2000)
    forest = RandomForestClassifier(n_estimators=2, random_state=0).fit(x.x_train, x.y_train)
    sio.dump(forest, directory / ARTIFACT_NAME)
    meta = json.loads((directory / "metadata.json").read_text())
    meta["sha256"] = sha256_file(directory / ARTIFACT_NAME)
    (directory / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactIntegrityError, match=r"types nobody trusted: sklearn\.tree"):
        registry.load("demo", "v1")


def test_unknown_version_and_bad_names(registry: ModelRegistry) -> None:
    with pytest.raises(NotFound):
        registry.load("demo", "v9")
    with pytest.raises(BadRequest):
        registry.load("demo", "../../etc")


def test_artifact_bytes_are_canonical(registry: ModelRegistry) -> None:
    artifact = registry.version_dir("demo", "v1") / ARTIFACT_NAME
    with zipfile.ZipFile(io.BytesIO(artifact.read_bytes())) as archive:
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}


def test_listing(registry: ModelRegistry) -> None:
    assert registry.models() == ["demo"]
    assert [m["version"] for m in registry.versions("demo")] == ["v1"]
