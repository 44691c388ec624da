"""Open Inference Protocol V2 through abgate, in front of a real Seldon MLServer.

One MLServer process serves two versions of a scikit-learn model (``clf-v1``,
``clf-v2``); the experiment's variants name them with ``upstream_model``.
Clients call abgate as they would call MLServer.
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
    start_mlserver,
    train_versions,
)

pytestmark = pytest.mark.integration

V2 = Protocol(
    path="/v2/models/clf/infer",
    body=lambda rows: {
        "inputs": [
            {
                "name": "x",
                "shape": [len(rows), 4],
                "datatype": "FP64",
                "data": [v for row in rows for v in row],
            }
        ]
    },
    read=lambda answer: answer["outputs"][0]["data"],
    direct=lambda model: f"/v2/models/{model}/infer",
    answered_by=lambda answer: answer["model_name"],
)


def config(port: int) -> str:
    return f"""\
name: clf-v2-protocol
model: clf
protocol: open-inference-v2
unit: {{source: header, name: X-User-ID}}
variants:
  - name: champion
    role: champion
    model_version: v1
    upstream_model: clf-v1
    endpoints: ['http://127.0.0.1:{port}']
    weight: 60
  - name: challenger
    role: challenger
    model_version: v2
    upstream_model: clf-v2
    endpoints: ['http://127.0.0.1:{port}']
    weight: 40
"""


def test_mlserver_behind_abgate_answers_splits_and_joins_row_feedback(
    tmp_path: Path, redis_url: str
) -> None:
    require("mlserver", "python")
    models = train_versions(tmp_path / "models")
    server = start_mlserver(models, tmp_path)
    try:
        port = int(server.url.rsplit(":", 1)[1])
        upstreams = {
            "champion": (server.url, "/v2/models/clf-v1/infer"),
            "challenger": (server.url, "/v2/models/clf-v2/infer"),
        }
        report = run_experiment(tmp_path, redis_url, config(port), V2, upstreams)
        seen = report["_seen"]
        assert seen.ones["champion"] != seen.rows["champion"]  # real predictions, not all 1
        assert report["srm"]["checked"] and not report["srm"]["mismatch"], report["srm"]

        # Readiness and metadata come from the server of the unit's variant, untouched.
        gateway = start_gateway(None, redis_url)
        try:
            for unit in ("user-1", "user-2", "user-3", "user-4"):
                ready = requests.get(gateway.url + "/v2/models/clf/ready",
                                     headers={"X-User-ID": unit}, timeout=30)  # fmt: skip
                assert ready.status_code == 200, ready.text
                meta = requests.get(gateway.url + "/v2/models/clf",
                                    headers={"X-User-ID": unit}, timeout=30)  # fmt: skip
                assert meta.status_code == 200, meta.text
                expected = "clf-v1" if meta.headers["X-Variant"] == "champion" else "clf-v2"
                assert meta.json()["name"] == expected
            # A model abgate does not route is the gateway's 404, not the server's.
            missing = requests.post(gateway.url + "/v2/models/other/infer", json={}, timeout=30)
            assert missing.status_code == 404
            assert "no experiment routes model 'other'" in missing.json()["error"]
            # abgate's own /predict is not this experiment's path.
            native = requests.post(gateway.url + "/v1/clf/predict",
                                   json={"features": [1.0]}, timeout=30)  # fmt: skip
            assert native.status_code == 404
            assert "open-inference-v2" in native.json()["error"]
        finally:
            gateway.stop()
    finally:
        server.stop()
