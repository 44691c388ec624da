"""Real model servers for the protocol tests: Seldon MLServer, MLflow and KServe, from PyPI.

They live in a venv of their own (``make install``: pyproject's model-servers extra,
in ``.venv/model-servers``), because their pins would pull abgate's own
dependencies back. Each server is a real process on a free port, started as the leader of a
process group of its own and stopped by its pid (the whole group: ``mlflow models
serve`` runs uvicorn as a child). The models are two versions of a scikit-learn
classifier trained here, in the servers' Python, so the joblib files MLServer
and KServe load are written by the scikit-learn that reads them.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from abgate.processes import wait_http_ok
from abgate.redis_server import free_port
from core.schema import decode_stats
from core.store import Store
from experiments.loader import load_experiment
from gateway.assignment import Assigner
from tests.conftest import start_gateway
from tests.waiting import wait_for

SERVERS = Path(sys.prefix) / "model-servers"
BIN = SERVERS / "bin"

TRAIN = """\
import json, sys
from pathlib import Path

import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression

out = Path(sys.argv[1])
rng = np.random.default_rng(7)
x = rng.normal(size=(400, 4))
# Two versions that disagree on many rows, so which one answered shows in its predictions.
labels = {"v1": x[:, 0] + x[:, 1] > 0, "v2": x[:, 0] - x[:, 2] > 0}
for version, y in labels.items():
    model = LogisticRegression().fit(x, y.astype(int))
    (out / version).mkdir(parents=True, exist_ok=True)
    joblib.dump(model, out / version / "model.joblib")
    if "--mlflow" in sys.argv:
        import mlflow.sklearn
        from mlflow.models import infer_signature

        mlflow.sklearn.save_model(
            model, str(out / version / "mlflow"), serialization_format="skops",
            signature=infer_signature(x, model.predict(x)),
        )
"""

KSERVE_SERVER = """\
import json, sys

import joblib
import kserve


class Classifier(kserve.Model):
    def __init__(self, name, path):
        super().__init__(name)
        self.model = joblib.load(path)
        self.ready = True

    def predict(self, payload, headers=None):
        if isinstance(payload, (bytes, bytearray)):  # some kserve versions pass the raw body
            payload = json.loads(payload)
        return {"predictions": self.model.predict(payload["instances"]).tolist()}


port = int(sys.argv[3])
server = kserve.ModelServer(http_port=port, grpc_port=int(sys.argv[4]), workers=1)
server.start([Classifier(sys.argv[1], sys.argv[2])])
"""


def require(*executables: str) -> Path:
    """The servers' bin/ directory, or a skip saying what is missing and why."""
    missing = [name for name in executables if not (BIN / name).exists()]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed in {SERVERS} (pyproject's model-servers "
            "extra, installed by `make install`; it may not install on this platform)"
        )
    return BIN


@dataclass
class Server:
    """A model server process leading a process group of its own; stopped with the group."""

    name: str
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to the group this test started (its children too), then SIGKILL."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        # A child that outlived its parent (uvicorn under mlflow) is still in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)


def start_server(
    name: str, argv: list[str], *, port: int, ready: str, log_dir: Path, cwd: Path | None = None
) -> Server:
    """Start ``argv`` with the servers' bin/ first on PATH; wait until ``ready`` answers 200."""
    log = log_dir / f"{name}.log"
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("VIRTUAL_ENV", None)
    with log.open("wb") as sink:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, env=env,
            cwd=cwd, start_new_session=True,
        )  # fmt: skip
    server = Server(name, process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + 180  # the first import of mlflow or kserve is slow
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited ({process.returncode}): {log.read_text()[-3000:]}"
                )
            try:
                wait_http_ok(server.url + ready, timeout=2.0)
                return server
            except TimeoutError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready: {log.read_text()[-3000:]}") from None
    except BaseException:
        server.stop()
        raise


def train_versions(out: Path, *, mlflow: bool = False) -> Path:
    """Two versions (v1, v2) of a scikit-learn classifier as joblib files (and MLflow models)."""
    out.mkdir(parents=True, exist_ok=True)
    script = out / "train.py"
    script.write_text(TRAIN)
    argv = [str(BIN / "python"), str(script), str(out)] + (["--mlflow"] if mlflow else [])
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return out


def start_mlserver(models: Path, work: Path) -> Server:
    """One MLServer serving v1 and v2 as models ``clf-v1`` and ``clf-v2`` (V2 protocol)."""
    root = work / "mlserver"
    for version in ("v1", "v2"):
        directory = root / f"clf-{version}"
        directory.mkdir(parents=True)
        (directory / "model.joblib").write_bytes((models / version / "model.joblib").read_bytes())
        (directory / "model-settings.json").write_text(json.dumps({
            "name": f"clf-{version}",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib", "version": version},
        }))  # fmt: skip
    port = free_port()
    (root / "settings.json").write_text(json.dumps({
        "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
        "metrics_port": free_port(),
        # Its worker pool dies with "There is no current event loop" under 1.7.1.
        "parallel_workers": 0,
    }))  # fmt: skip
    argv = [str(BIN / "mlserver"), "start", str(root)]
    return start_server("mlserver", argv, port=port, ready="/v2/models/clf-v2/ready",
                        log_dir=work)  # fmt: skip


def start_mlflow(model_dir: Path, work: Path, name: str) -> Server:
    """``mlflow models serve`` of one model directory (MLflow's scoring protocol)."""
    port = free_port()
    argv = [str(BIN / "mlflow"), "models", "serve", "-m", str(model_dir), "-p", str(port),
            "-h", "127.0.0.1", "--env-manager", "local"]  # fmt: skip
    return start_server(name, argv, port=port, ready="/ping", log_dir=work)


def start_kserve(model: Path, work: Path, name: str) -> Server:
    """The kserve package's ModelServer with one scikit-learn model (KServe V1)."""
    script = work / "kserve_server.py"
    script.write_text(KSERVE_SERVER)
    port = free_port()
    argv = [str(BIN / "python"), str(script), "clf", str(model), str(port), str(free_port())]
    return start_server(name, argv, port=port, ready="/v1/models/clf", log_dir=work, cwd=work)


def abgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the abgate CLI as a real process."""
    return subprocess.run(
        [sys.executable, "-m", "abgate", *args],
        capture_output=True, text=True, timeout=120, env={**os.environ, **env}, check=False,
    )  # fmt: skip


def within_noise(count: int, total: int, share: float, sigmas: float = 4.0) -> bool:
    """``count`` of ``total`` is within ``sigmas`` binomial standard deviations of ``share``."""
    return abs(count - total * share) <= sigmas * math.sqrt(total * share * (1 - share))


@dataclass
class Protocol:
    """How a protocol's client asks (path, body) and where it reads the predictions."""

    path: str
    body: Callable[[list[list[float]]], dict[str, Any]]
    read: Callable[[dict[str, Any]], list[Any]]
    direct: Callable[[str], str]  # variant's upstream model name -> path on its server
    answered_by: Callable[[dict[str, Any]], str | None] = lambda answer: None


@dataclass
class Outcome:
    """What a run through the gateway saw."""

    served: collections.Counter[str] = field(default_factory=collections.Counter)
    ones: collections.Counter[str] = field(default_factory=collections.Counter)
    rows: collections.Counter[str] = field(default_factory=collections.Counter)


def rows_for(i: int) -> list[list[float]]:
    """The rows of request ``i``: one row every third request, else two (a batch)."""
    rng = [((i * 7 + k * 13) % 17 - 8) / 4.0 for k in range(8)]
    return [rng[:4]] if i % 3 == 0 else [rng[:4], rng[4:]]


def run_experiment(
    tmp_path: Path,
    redis_url: str,
    config_text: str,
    protocol: Protocol,
    upstreams: dict[str, tuple[str, str]],
    *,
    requests_count: int = 240,
) -> dict[str, Any]:
    """Apply the experiment, send requests and row feedback through a real gateway, and
    check each answer against its variant's own server; returns the report (JSON).

    ``upstreams``: variant -> (server URL, path there) the variant's answer must equal.
    """
    config_path = tmp_path / "experiment.yaml"
    config_path.write_text(config_text)
    config = load_experiment(config_path)
    env = {"REDIS_URL": redis_url, "ABGATE_REGISTRY_DIR": str(tmp_path / "registry")}
    applied = abgate("apply", str(config_path), env=env)
    assert applied.returncode == 0, applied.stderr
    assigner = Assigner.from_config(config)
    gateway = start_gateway(None, redis_url)
    seen = Outcome()
    try:
        for i in range(requests_count):
            unit = f"user-{i}"
            rows = rows_for(i)
            body = protocol.body(rows)
            answer = requests.post(
                gateway.url + protocol.path, json=body, headers={"X-User-ID": unit}, timeout=30
            )
            assert answer.status_code == 200, answer.text
            variant = answer.headers["X-Variant"]
            assert variant == assigner.assign(unit).name  # the same assignment as /predict
            assert answer.headers["X-Model-Version"] == config.variant(variant).model_version
            # The variant's own server gives the same answer to the same body.
            url, path = upstreams[variant]
            direct = requests.post(url + path, json=body, timeout=30)
            assert protocol.read(answer.json()) == protocol.read(direct.json())
            assert protocol.answered_by(answer.json()) == protocol.answered_by(direct.json())
            predictions = protocol.read(answer.json())
            assert len(predictions) == len(rows)
            rid = answer.headers["X-Request-ID"]
            if len(rows) > 1:
                assert answer.headers["X-Outcome-Rows"] == str(len(rows))
                ids = [f"{rid}.{k}" for k in range(len(rows))]
            else:
                assert "X-Outcome-Rows" not in answer.headers
                ids = [rid]
            seen.served[variant] += 1
            for outcome_id, prediction in zip(ids, predictions, strict=True):
                joined = requests.post(
                    gateway.url + "/feedback",
                    json={"request_id": outcome_id, "label": 1, "experiment": config.name},
                    timeout=30,
                )
                assert joined.status_code in (200, 202), joined.text
                if joined.status_code == 200:
                    assert joined.json()["variant"] == variant
                seen.rows[variant] += 1
                seen.ones[variant] += int(prediction == 1)
        # The bare id of a batch is no outcome: its rows are.
        refused = requests.post(
            gateway.url + "/feedback",
            json={"request_id": rid if len(rows) > 1 else f"{rid}x", "label": 1},
            timeout=30,
        )
        assert refused.status_code in (404, 409), refused.text
    finally:
        gateway.stop()

    # Split within binomial noise of the configured weights.
    total = sum(seen.served.values())
    for variant in config.variants:
        share = variant.weight / 100
        assert within_noise(seen.served[variant.name], total, share), (seen.served, share)

    # Every row's label joined the variant that served it, scored against its own row.
    def joined() -> bool:
        stats = decode_stats(Store(redis_url).totals(config.name)).variants()
        counted = {name: s.metrics.get("accuracy") for name, s in stats.items()}
        return all(
            (m := counted.get(name)) is not None
            and m.n == seen.rows[name]
            and round(m.sum) == seen.ones[name]
            for name in seen.served
        )

    wait_for(joined, "every row's feedback counted for the variant that served it")
    report_md = tmp_path / "report.md"
    done = abgate("report", config.name, "--format", "md", "--out", str(report_md), env=env)
    assert done.returncode == 0, done.stderr
    text = report_md.read_text()
    assert all(v.name in text for v in config.variants), text[:2000]
    done = abgate("report", config.name, "--format", "json", env=env)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    report["_seen"] = seen
    return report
