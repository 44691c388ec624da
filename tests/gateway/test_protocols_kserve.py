"""KServe V1 through abgate, in front of the kserve package's own ModelServer.

Each version is a ``kserve.Model`` (a scikit-learn classifier) served by
``kserve.ModelServer`` in its own process; clients POST
``/v1/models/<name>:predict`` to abgate as they would to KServe.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gateway.model_servers import (
    Protocol,
    require,
    run_experiment,
    start_kserve,
    train_versions,
)

pytestmark = pytest.mark.integration

V1 = Protocol(
    path="/v1/models/clf:predict",
    body=lambda rows: {"instances": rows},
    read=lambda answer: answer["predictions"],
    direct=lambda model: f"/v1/models/{model}:predict",
)


def config(ports: dict[str, int]) -> str:
    return f"""\
name: clf-kserve
model: clf
protocol: kserve-v1
unit: {{source: header, name: X-User-ID}}
variants:
  - name: champion
    role: champion
    model_version: v1
    endpoints: ['http://127.0.0.1:{ports["v1"]}']
    weight: 70
  - name: canary
    role: canary
    model_version: v2
    endpoints: ['http://127.0.0.1:{ports["v2"]}']
    weight: 30
"""


def test_kserve_v1_servers_behind_abgate_answer_split_and_join_row_feedback(
    tmp_path: Path, redis_url: str
) -> None:
    bin_dir = require("python")
    if not list((bin_dir.parent / "lib").glob("python*/site-packages/kserve")):
        pytest.skip("the kserve package is not installed in the model servers' venv")
    models = train_versions(tmp_path / "models")
    servers = {}
    try:
        for version in ("v1", "v2"):
            servers[version] = start_kserve(
                models / version / "model.joblib", tmp_path, f"kserve-{version}"
            )
        ports = {v: int(s.url.rsplit(":", 1)[1]) for v, s in servers.items()}
        upstreams = {
            "champion": (servers["v1"].url, "/v1/models/clf:predict"),
            "canary": (servers["v2"].url, "/v1/models/clf:predict"),
        }
        report = run_experiment(tmp_path, redis_url, config(ports), V1, upstreams)
        seen = report["_seen"]
        assert seen.ones["champion"] != seen.ones["canary"]  # two different models answered
        assert report["srm"]["checked"] and not report["srm"]["mismatch"], report["srm"]
    finally:
        for server in servers.values():
            server.stop()
