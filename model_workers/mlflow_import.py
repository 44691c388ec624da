"""Importing an MLflow scikit-learn model into the registry, through skops only.

A source is an MLflow model directory (the one holding ``MLmodel``) or
``models:/<name>/<version>`` of a local tracking store: a SQLite database
(``sqlite:///mlflow.db``, MLflow's default) or a file store directory. MLflow
itself is not needed: ``MLmodel`` is YAML, and a model version's artifact
location is one row of the store.

Only models logged with ``serialization_format="skops"`` (MLflow's default
outside Databricks since 3.x) are imported: pickle and cloudpickle run code
from the file when loaded, and a registry whose promise is "loading executes
no code from the file" cannot take them. The artifact's bytes are stored as
they are, so its sha256 in the registry is the one of the MLflow file, and
its signature, run and versions travel in the metadata. A pickled model
is better served where it already runs: ``mlflow models serve`` behind an
experiment with ``protocol: mlflow`` (docs/model-servers.md).
"""

from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

from core.errors import BadRequest, NotFound

__all__ = ["DEFAULT_TRACKING_URI", "MlflowModel", "read_mlflow_model", "resolve_model_dir"]

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # MLflow 3's own default, in the working directory


def _local_path(location: str) -> Path | None:
    parts = urlsplit(location)
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if parts.scheme == "" and location.startswith("/"):
        return Path(location)
    return None


def _sqlite_location(uri: str, name: str, version: str) -> list[str]:
    # sqlite:///mlflow.db is relative to the working directory, sqlite:////abs/path absolute.
    path = Path(unquote(uri.removeprefix("sqlite:///")))
    if not path.is_file():
        raise NotFound(f"no MLflow tracking database at {path}")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        row = db.execute(
            "SELECT storage_location, source FROM model_versions WHERE name = ? AND version = ?",
            (name, int(version)),
        ).fetchone()
    if row is None:
        raise NotFound(f"model {name} version {version} is not registered in {path}")
    return [str(value) for value in row if value]


def _file_store_location(root: Path, name: str, version: str) -> list[str]:
    meta = root / "models" / name / f"version-{version}" / "meta.yaml"
    if not meta.is_file():
        raise NotFound(f"model {name} version {version} is not registered in {root}")
    data = yaml.safe_load(meta.read_text()) or {}
    return [str(data[key]) for key in ("storage_location", "source") if data.get(key)]


def resolve_model_dir(source: str, tracking_uri: str | None = None) -> Path:
    """The local directory of an MLflow model given as a directory or ``models:/name/version``."""
    if not source.startswith("models:/"):
        return Path(source)
    name, _, version = source.removeprefix("models:/").partition("/")
    if not name or not version.isdigit():
        raise BadRequest(f"{source}: expected models:/<name>/<version number> (no aliases)")
    uri = tracking_uri or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///"):
        locations = _sqlite_location(uri, name, version)
    else:
        root = _local_path(uri) or Path(uri)
        locations = _file_store_location(root, name, version)
    for location in locations:
        path = _local_path(location)
        if path is not None and (path / "MLmodel").is_file():
            return path
    raise BadRequest(
        f"{source}: its artifacts are not in a local directory ({', '.join(locations)}); "
        "download them (mlflow artifacts download) and import the directory"
    )


class MlflowModel:
    """An MLflow scikit-learn model saved with skops: its bytes and what MLmodel says."""

    def __init__(self, directory: Path, mlmodel: dict[str, Any], artifact: bytes) -> None:
        self.directory = directory
        self.mlmodel = mlmodel
        self.artifact = artifact

    @property
    def estimator_class(self) -> str:
        """The top-level class in the skops archive (read without loading anything)."""
        try:
            with zipfile.ZipFile(io.BytesIO(self.artifact)) as archive:
                schema = json.loads(archive.read("schema.json"))
        except (zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise BadRequest(f"{self.directory}: the skops artifact is unreadable: {exc}") from exc
        return str(schema.get("__class__", "?"))

    def metadata(self, source: str, n_features: int, classes: list[int]) -> dict[str, Any]:
        """Registry metadata: what workers need, and where the model came from."""
        sklearn = self.mlmodel["flavors"]["sklearn"]
        signature = self.mlmodel.get("signature") or {}
        return {
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "features": {"count": n_features, "names": _input_names(signature, n_features)},
            "classes": classes,
            "holdout_metrics": {},
            "imported_from": {
                "kind": "mlflow",
                "source": source,
                "model_uuid": self.mlmodel.get("model_uuid"),
                "run_id": self.mlmodel.get("run_id"),
                "mlflow_version": self.mlmodel.get("mlflow_version"),
                "sklearn_version": sklearn.get("sklearn_version"),
                "serialization_format": sklearn.get("serialization_format"),
                "signature": {
                    key: json.loads(value) if isinstance(value, str) else value
                    for key, value in signature.items()
                },
            },
        }


def _input_names(signature: dict[str, Any], count: int) -> list[str]:
    inputs = signature.get("inputs")
    try:
        columns = json.loads(inputs) if isinstance(inputs, str) else []
    except ValueError:
        columns = []
    names = [c.get("name") for c in columns if isinstance(c, dict)]
    if len(names) == count and all(isinstance(n, str) for n in names):
        return [str(n) for n in names]
    return [f"f{i}" for i in range(count)]


def read_mlflow_model(directory: Path) -> MlflowModel:
    """Read ``MLmodel`` and the skops artifact; refuse any other flavor or format."""
    mlmodel_path = directory / "MLmodel"
    if not mlmodel_path.is_file():
        raise NotFound(f"{directory}: no MLmodel file (not an MLflow model directory)")
    try:
        mlmodel = yaml.safe_load(mlmodel_path.read_text())
    except yaml.YAMLError as exc:
        raise BadRequest(f"{mlmodel_path}: unreadable: {exc}") from exc
    flavors = mlmodel.get("flavors") if isinstance(mlmodel, dict) else None
    sklearn = flavors.get("sklearn") if isinstance(flavors, dict) else None
    if not isinstance(sklearn, dict):
        raise BadRequest(
            f"{directory}: not a scikit-learn model (flavors: "
            f"{', '.join(flavors or {}) or 'none'}); serve it with `mlflow models serve` "
            "behind an experiment with protocol: mlflow"
        )
    fmt = sklearn.get("serialization_format", "cloudpickle")
    if fmt != "skops":
        raise BadRequest(
            f"{directory}: saved as {fmt}, which runs code from the file when loaded; abgate "
            "imports only skops (mlflow.sklearn.log_model(..., serialization_format='skops')), "
            "or serve it with `mlflow models serve` behind protocol: mlflow"
        )
    artifact = directory / str(sklearn.get("pickled_model", "model.skops"))
    if not artifact.is_file() or artifact.resolve().parent != directory.resolve():
        raise BadRequest(f"{directory}: the artifact {artifact.name} is missing")
    return MlflowModel(directory, mlmodel, artifact.read_bytes())
