"""`abgate models import`: MLflow scikit-learn models into the registry, through skops only.

The MLflow models are made by the real ``mlflow`` (in the model servers' venv,
``tests/gateway/model_servers.py``) and logged to a real SQLite tracking store;
the import itself runs as the ``abgate`` CLI, which needs no MLflow. Refusals
are checked on hand-made model directories, so they run without MLflow too.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
import skops.io as sio
import yaml
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from abgate.processes import abgate_argv, start_child, wait_http_ok
from abgate.redis_server import free_port
from model_workers.registry import ModelRegistry
from tests.gateway.model_servers import BIN, require

LOG_MODELS = """\
import json, sys

import mlflow
import mlflow.sklearn
import numpy as np
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

root = sys.argv[1]
mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
mlflow.set_experiment("clf")
rng = np.random.default_rng(3)
x = rng.normal(size=(300, 4))
y = (x[:, 0] + 0.5 * x[:, 3] > 0).astype(int)
model = LogisticRegression().fit(x, y)
signature = infer_signature(x, model.predict(x))
mlflow.sklearn.save_model(model, f"{root}/skops-dir", serialization_format="skops",
                          signature=signature)
mlflow.sklearn.save_model(model, f"{root}/pickle-dir", serialization_format="pickle")
with mlflow.start_run():
    mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                             signature=signature, registered_model_name="clf")
probe = x[:20]
json.dump({"rows": probe.tolist(), "proba": model.predict_proba(probe).tolist()},
          open(f"{root}/expected.json", "w"))
"""


def abgate(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "abgate", *args],
        capture_output=True, text=True, timeout=120, check=False, cwd=cwd,
        env={k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """MLflow models made by MLflow: a skops dir, a pickle dir, version 1 of `clf` in SQLite."""
    require("python", "mlflow")
    root = tmp_path_factory.mktemp("mlflow")
    script = root / "log_models.py"
    script.write_text(LOG_MODELS)
    done = subprocess.run(
        [str(BIN / "python"), str(script), str(root)],
        capture_output=True, text=True, timeout=300, check=False, cwd=root,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return root


@pytest.mark.integration
def test_a_skops_model_directory_is_imported_with_its_sha256_and_signature_and_served(
    logged: Path, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    done = abgate("models", "import", str(logged / "skops-dir"), "--model", "clf",
                  "--version", "v1", "--registry", str(registry))  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = ModelRegistry(registry).metadata("clf", "v1")
    source = (logged / "skops-dir" / "model.skops").read_bytes()
    assert meta["sha256"] == hashlib.sha256(source).hexdigest()
    assert meta["estimator"] == "LogisticRegression"
    assert meta["features"]["count"] == 4 and meta["classes"] == [0, 1]
    mlmodel = yaml.safe_load((logged / "skops-dir" / "MLmodel").read_text())
    assert meta["imported_from"]["signature"]["inputs"] == json.loads(
        mlmodel["signature"]["inputs"]
    )
    assert meta["imported_from"]["serialization_format"] == "skops"

    # An abgate worker serves it and answers as the MLflow model does.
    expected = json.loads((logged / "expected.json").read_text())
    port = free_port()
    argv = abgate_argv("worker", "--model", "clf", "--version", "v1", "--port", str(port),
                       "--registry", str(registry))  # fmt: skip
    worker = start_child("worker", argv, url=f"http://127.0.0.1:{port}")
    try:
        wait_http_ok(f"{worker.url}/ready", child=worker, timeout=60)
        for row, proba in zip(expected["rows"], expected["proba"], strict=True):
            answer = requests.post(f"{worker.url}/predict", json={"features": row}, timeout=30)
            assert answer.status_code == 200, answer.text
            np.testing.assert_allclose(answer.json()["probability"], proba, rtol=1e-9)
    finally:
        worker.stop()

    again = abgate("models", "import", str(logged / "skops-dir"), "--model", "clf",
                   "--version", "v1", "--registry", str(registry))  # fmt: skip
    assert again.returncode == 1
    assert "already in the registry" in again.stderr


@pytest.mark.integration
def test_a_registered_version_is_imported_from_the_sqlite_tracking_store(
    logged: Path, tmp_path: Path
) -> None:
    registry = tmp_path / "registry"
    done = abgate("models", "import", "models:/clf/1", "--model", "clf", "--version", "v2",
                  "--registry", str(registry), "--tracking-uri",
                  f"sqlite:///{logged}/mlflow.db")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ModelRegistry(registry).load("clf", "v2").n_features == 4
    # MLflow's default store is mlflow.db in the working directory.
    done = abgate("models", "import", "models:/clf/1", "--model", "clf", "--version", "v3",
                  "--registry", str(registry), cwd=logged)  # fmt: skip
    assert done.returncode == 0, done.stderr
    missing = abgate("models", "import", "models:/clf/9", "--model", "clf", "--version", "v4",
                     "--registry", str(registry), cwd=logged)  # fmt: skip
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "model clf version 9 is not registered" in (
        missing.stderr
    )


@pytest.mark.integration
def test_a_pickled_mlflow_model_is_refused_in_one_line(logged: Path, tmp_path: Path) -> None:
    done = abgate("models", "import", str(logged / "pickle-dir"), "--model", "clf",
                  "--version", "v1", "--registry", str(tmp_path / "registry"))  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "saved as pickle" in done.stderr and "protocol: mlflow" in done.stderr
    assert not (tmp_path / "registry" / "clf").exists()


def fake_mlflow_dir(path: Path, estimator: object, **sklearn: object) -> Path:
    """An MLflow-like model directory written by hand (no MLflow needed)."""
    path.mkdir(parents=True)
    sio.dump(estimator, path / "model.skops")
    flavor = {"pickled_model": "model.skops", "serialization_format": "skops", **sklearn}
    (path / "MLmodel").write_text(yaml.safe_dump({"flavors": {"sklearn": flavor}}))
    return path


def test_refusals_name_the_reason(tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(60, 3))
    y = (x[:, 0] > 0).astype(int)
    registry = str(tmp_path / "registry")
    cases = {
        # pickled_model pointing outside the model directory (at another model's file)
        "outside": (fake_mlflow_dir(tmp_path / "outside", LogisticRegression().fit(x, y),
                                    pickled_model="../forest/model.skops"), "missing"),
        "cloudpickle": (fake_mlflow_dir(tmp_path / "cloudpickle", LogisticRegression().fit(x, y),
                                        serialization_format="cloudpickle"), "as cloudpickle"),
        # a family with a trust list of its own (its Tree type): taken
        "forest": (fake_mlflow_dir(tmp_path / "forest",
                                   RandomForestClassifier(n_estimators=2).fit(x, y)), None),
        "no-mlmodel": (tmp_path, "no MLmodel file"),
        # an estimator family nobody wrote a trust list for
        "pipeline": (fake_mlflow_dir(tmp_path / "pipeline",
                                     make_pipeline(LogisticRegression()).fit(x, y)),
                     "no trust list for Pipeline"),
    }  # fmt: skip
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "MLmodel").write_text("flavors: {python_function: {}}\n")
    cases["flavor"] = (tmp_path / "other", "not a scikit-learn model")
    for name, (directory, phrase) in cases.items():
        done = abgate("models", "import", str(directory), "--model", "m", "--version", name,
                      "--registry", registry)  # fmt: skip
        if name == "forest":
            assert done.returncode == 0, done.stderr
            continue
        assert done.returncode == 1, (name, done.stdout)
        assert done.stderr.count("\n") == 1 and phrase in done.stderr, (name, done.stderr)
