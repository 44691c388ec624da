"""The model registry: ``<root>/<model>/<version>/`` with a skops artifact and metadata.

Artifacts are stored with skops, never pickle: loading one executes no code
from the file. Before loading, the artifact's sha256 must match the one
recorded at registration, and every type in it must be on the trust list of
its model family, so a tampered or foreign file is refused with a clear error.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core.errors import ArtifactIntegrityError, BadRequest, NotFound

__all__ = [
    "ARTIFACT_NAME",
    "METADATA_NAME",
    "TRUSTED_TYPES",
    "LoadedModel",
    "ModelRegistry",
    "sha256_file",
    "verified_estimator",
]

ARTIFACT_NAME = "model.skops"
METADATA_NAME = "metadata.json"
CHAMPION_NAME = "champion.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# skops refuses, by default, types outside its own safe list; these are the
# extra ones each estimator family needs, and nothing more.
TRUSTED_TYPES: dict[str, tuple[str, ...]] = {
    "HistGradientBoostingClassifier": (
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    ),
    "RandomForestClassifier": ("sklearn.tree._tree.Tree",),
    "LogisticRegression": (),
}


def canonical_skops(data: bytes) -> bytes:
    """Rewrite a skops archive so the same estimator always gives the same bytes.

    skops names array files and memo ids after ``id()`` of the objects and
    stamps zip entries with the current time, so two dumps of one model differ.
    Renumbering those ids in order of first appearance and fixing the
    timestamps makes the sha256 a function of the model alone, which is what
    "same seed, same artifact" needs.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        schema = json.loads(source.read("schema.json"))
        renumber: dict[str, str] = {}

        def new_id(old: str) -> str:
            return renumber.setdefault(old, str(len(renumber) + 1))

        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                out = {}
                for key, value in node.items():
                    if key == "__id__" and isinstance(value, int):
                        out[key] = int(new_id(str(value)))
                    elif key == "file" and isinstance(value, str) and "." in value:
                        stem, _, suffix = value.partition(".")
                        out[key] = f"{new_id(stem)}.{suffix}"
                    else:
                        out[key] = walk(value)
                return out
            if isinstance(node, list):
                return [walk(item) for item in node]
            return node

        canonical_schema = walk(schema)
        members = {
            info.filename: source.read(info.filename)
            for info in source.infolist()
            if info.filename != "schema.json"
        }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
        renamed = {}
        for name, content in members.items():
            stem, _, suffix = name.partition(".")
            renamed[f"{new_id(stem)}.{suffix}"] = content
        entries = {**renamed, "schema.json": json.dumps(canonical_schema, sort_keys=True).encode()}
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            target.writestr(info, entries[name])
    return buffer.getvalue()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verified_estimator(data: bytes, family: str, where: str) -> Any:
    """Load skops bytes trusting only ``family``'s types; ``ArtifactIntegrityError`` for
    any other type in them, or an estimator of another class than ``family``."""
    import skops.io as sio

    if family not in TRUSTED_TYPES:
        known = ", ".join(sorted(TRUSTED_TYPES))
        raise ArtifactIntegrityError(f"{where}: no trust list for {family} (known: {known})")
    trusted = list(TRUSTED_TYPES[family])
    try:
        untrusted = [t for t in sio.get_untrusted_types(data=data) if t not in trusted]
        if untrusted:
            raise ArtifactIntegrityError(
                f"{where}: holds types nobody trusted: {', '.join(sorted(untrusted))}"
            )
        estimator = sio.loads(data, trusted=trusted)
    except ArtifactIntegrityError:
        raise
    except Exception as exc:  # skops raises many kinds for a corrupt file
        raise ArtifactIntegrityError(f"{where}: cannot load: {exc}") from exc
    if type(estimator).__name__ != family:
        raise ArtifactIntegrityError(f"{where}: holds a {type(estimator).__name__}, not {family}")
    return estimator


@dataclass(frozen=True)
class LoadedModel:
    """A verified, loaded estimator with its metadata."""

    model: str
    version: str
    estimator: Any
    metadata: dict[str, Any]

    @property
    def n_features(self) -> int:
        """How many features one row must have."""
        return int(self.metadata["features"]["count"])


class ModelRegistry:
    """File-system registry of model versions."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()  # handed to worker processes that may run elsewhere

    def version_dir(self, model: str, version: str) -> Path:
        """Directory of one version; names are checked so no path escapes the root."""
        for kind, value in (("model", model), ("version", version)):
            if not _NAME.match(value):
                raise BadRequest(f"invalid {kind} name {value!r}: use letters, digits, . _ -")
        return self.root / model / version

    def register(self, model: str, version: str, estimator: Any, metadata: dict[str, Any]) -> Path:
        """Write the artifact and its metadata (with the artifact's sha256); return the dir."""
        import skops.io as sio

        family = type(estimator).__name__
        if family not in TRUSTED_TYPES:
            raise BadRequest(f"no trust list for estimator type {family}")
        directory = self.version_dir(model, version)
        directory.mkdir(parents=True, exist_ok=True)
        artifact = directory / ARTIFACT_NAME
        artifact.write_bytes(canonical_skops(sio.dumps(estimator)))
        record = {
            **metadata,
            "model": model,
            "version": version,
            "estimator": family,
            "artifact": ARTIFACT_NAME,
            "sha256": sha256_file(artifact),
        }
        (directory / METADATA_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return directory

    def register_artifact(
        self, model: str, version: str, data: bytes, metadata: dict[str, Any]
    ) -> Path:
        """Store a skops artifact made elsewhere (an import) byte for byte, so its sha256
        stays the one of its source; ``metadata["estimator"]`` names its family.

        The artifact must load with its family's trust list (``verified_estimator``)
        before this is called; a version already in the registry is never overwritten.
        """
        directory = self.version_dir(model, version)
        if (directory / METADATA_NAME).exists():
            raise BadRequest(f"model {model} version {version} is already in the registry")
        directory.mkdir(parents=True, exist_ok=True)
        artifact = directory / ARTIFACT_NAME
        artifact.write_bytes(data)
        record = {
            **metadata,
            "model": model,
            "version": version,
            "artifact": ARTIFACT_NAME,
            "sha256": sha256_file(artifact),
        }
        (directory / METADATA_NAME).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        return directory

    def metadata(self, model: str, version: str) -> dict[str, Any]:
        """The metadata.json of one version."""
        path = self.version_dir(model, version) / METADATA_NAME
        if not path.is_file():
            raise NotFound(f"model {model} version {version} is not in the registry at {self.root}")
        try:
            data: dict[str, Any] = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ArtifactIntegrityError(f"{path}: unreadable metadata: {exc}") from exc
        return data

    def load(self, model: str, version: str) -> LoadedModel:
        """Verify the sha256 and the types in the artifact, then load it."""
        import skops.io as sio

        meta = self.metadata(model, version)
        artifact = self.version_dir(model, version) / ARTIFACT_NAME
        if not artifact.is_file():
            raise ArtifactIntegrityError(f"{artifact}: artifact missing")
        actual = sha256_file(artifact)
        if actual != meta.get("sha256"):
            raise ArtifactIntegrityError(
                f"{artifact}: sha256 {actual[:12]}… does not match the registered "
                f"{str(meta.get('sha256'))[:12]}…; refusing to load a changed artifact"
            )
        trusted = list(TRUSTED_TYPES.get(str(meta.get("estimator")), ()))
        try:
            untrusted = [t for t in sio.get_untrusted_types(file=artifact) if t not in trusted]
            if untrusted:
                raise ArtifactIntegrityError(
                    f"{artifact}: holds types nobody trusted: {', '.join(sorted(untrusted))}"
                )
            estimator = sio.load(artifact, trusted=trusted)
        except ArtifactIntegrityError:
            raise
        except Exception as exc:  # skops raises many kinds for a corrupt file
            raise ArtifactIntegrityError(f"{artifact}: cannot load: {exc}") from exc
        return LoadedModel(model, version, estimator, meta)

    def set_champion(self, model: str, version: str, *, experiment: str, actor: str) -> None:
        """Record which version is the champion of ``model`` (after a promotion)."""
        self.metadata(model, version)  # must exist
        record = {
            "version": version,
            "experiment": experiment,
            "actor": actor,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        path = self.root / model / CHAMPION_NAME
        path.write_text(json.dumps(record, indent=2) + "\n")

    def champion(self, model: str) -> dict[str, Any] | None:
        """The recorded champion of ``model``, if a promotion recorded one."""
        path = self.root / model / CHAMPION_NAME
        if not path.is_file():
            return None
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def models(self) -> list[str]:
        """Names of registered models."""
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))

    def versions(self, model: str) -> list[dict[str, Any]]:
        """Metadata of every version of a model, oldest first."""
        base = self.root / model
        if not base.is_dir():
            return []
        found = [
            self.metadata(model, p.name)
            for p in base.iterdir()
            if p.is_dir() and (p / METADATA_NAME).is_file()
        ]
        return sorted(found, key=lambda m: (str(m.get("created_at", "")), str(m["version"])))
