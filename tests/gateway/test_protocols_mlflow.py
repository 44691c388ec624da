"""MLflow's scoring protocol through abgate, in front of two real `mlflow models serve`.

Each version is an MLflow model directory (saved with skops) served by its own
``mlflow models serve --env-manager local`` process; clients POST
``/invocations`` to abgate as they would to MLflow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.conftest import start_gateway
from tests.gateway.model_servers import (
    Protocol,
    require,
    run_experiment,
    start_mlflow,
    train_versions,
)

pytestmark = pytest.mark.integration

MLFLOW = Protocol(
    path="/invocations",
    body=lambda rows: {"inputs": rows},
    read=lambda answer: answer["predictions"],
    direct=lambda model: "/invocations",
)


def config(ports: dict[str, int]) -> str:
    return f"""\
name: clf-mlflow
model: clf
protocol: mlflow
unit: {{source: header, name: X-User-ID}}
variants:
  - name: champion
    role: champion
    model_version: v1
    endpoints: ['http://127.0.0.1:{ports["v1"]}']
    weight: 50
  - name: challenger
    role: challenger
    model_version: v2
    endpoints: ['http://127.0.0.1:{ports["v2"]}']
    weight: 50
"""


def test_mlflow_servers_behind_abgate_answer_split_and_join_row_feedback(
    tmp_path: Path, redis_url: str
) -> None:
    require("mlflow", "uvicorn")
    models = train_versions(tmp_path / "models", mlflow=True)
    servers = {}
    try:
        for version in ("v1", "v2"):
            servers[version] = start_mlflow(
                models / version / "mlflow", tmp_path, f"mlflow-{version}"
            )
        ports = {v: int(s.url.rsplit(":", 1)[1]) for v, s in servers.items()}
        upstreams = {
            "champion": (servers["v1"].url, "/invocations"),
            "challenger": (servers["v2"].url, "/invocations"),
        }
        report = run_experiment(tmp_path, redis_url, config(ports), MLFLOW, upstreams)
        seen = report["_seen"]
        assert seen.ones["champion"] != seen.ones["challenger"]  # two different models answered
        assert report["srm"]["checked"] and not report["srm"]["mismatch"], report["srm"]

        # The client's Content-Type goes with its body: MLflow reads CSV as CSV (and says,
        # in its own words, that this model's tensor signature takes no DataFrame).
        gateway = start_gateway(None, redis_url)
        try:
            csv = b"a,b,c,d\n1,1,0,0\n-1,-1,0,0\n"
            headers = {"Content-Type": "text/csv", "X-User-ID": "user-5"}
            through = requests.post(gateway.url + "/invocations", data=csv, headers=headers,
                                    timeout=30)  # fmt: skip
            variant = through.headers["X-Variant"]
            direct = requests.post(upstreams[variant][0] + "/invocations", data=csv,
                                   headers=headers, timeout=30)  # fmt: skip
            assert through.status_code == direct.status_code == 400
            assert through.json() == direct.json()
            assert "CSV" in through.json()["message"]
        finally:
            gateway.stop()
    finally:
        for server in servers.values():
            server.stop()
