"""Open Inference Protocol V2 through abgate, in front of a real Seldon MLServer.

One MLServer process serves two versions of a scikit-learn model (``clf-v1``,
``clf-v2``); the experiment's variants name them with ``upstream_model``.
Clients call abgate as they would call MLServer.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from abgate.redis_server import free_port
from core.schema import ShadowStats, decode_stats
from core.store import Store
from tests.conftest import start_gateway
from tests.gateway.model_servers import (
    Protocol,
    Server,
    require,
    run_experiment,
    start_mlserver,
    train_versions,
)
from tests.waiting import wait_for

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
shadows:
  - name: shadow
    model_version: v2
    upstream_model: clf-v2
    endpoints: ['http://127.0.0.1:{port}']
"""


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real MLServer process serving clf-v1 and clf-v2 for this module's tests."""
    require("mlserver", "python")
    work = tmp_path_factory.mktemp("mlserver")
    server = start_mlserver(train_versions(work / "models"), work)
    yield server
    server.stop()


def test_mlserver_behind_abgate_answers_splits_and_joins_row_feedback(
    tmp_path: Path, redis_url: str, mlserver: Server
) -> None:
    server = mlserver
    port = int(server.url.rsplit(":", 1)[1])
    upstreams = {
        "champion": (server.url, "/v2/models/clf-v1/infer"),
        "challenger": (server.url, "/v2/models/clf-v2/infer"),
    }
    report = run_experiment(tmp_path, redis_url, config(port), V2, upstreams)
    seen = report["_seen"]
    assert seen.ones["champion"] != seen.rows["champion"]  # real predictions, not all 1
    assert report["srm"]["checked"] and not report["srm"]["mismatch"], report["srm"]

    # The shadow (v2) got every call; each row is compared with the live row.
    rows = sum(seen.rows.values())

    def mirrored() -> ShadowStats | None:
        stats = decode_stats(Store(redis_url).totals("clf-v2-protocol")).shadows
        shadow = stats.get("shadow")
        return shadow if shadow is not None and shadow.compared == rows else None

    try:
        shadow = wait_for(mirrored, "every row compared with the shadow's")
    except AssertionError as exc:
        stats = decode_stats(Store(redis_url).totals("clf-v2-protocol")).shadows.get("shadow")
        raise AssertionError(f"{exc}: {rows} rows, the shadow's figures: {stats}") from None
    assert shadow.requests == sum(seen.served.values()) and shadow.errors == 0
    # v2 agrees with itself on the challenger's rows and not everywhere with v1's.
    assert seen.rows["challenger"] <= shadow.agreed < rows

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
        # The server's own 4xx comes back as it sent it, status and body.
        bad = {"parameters": {}}  # no inputs: refused by its request schema
        through = requests.post(gateway.url + V2.path, json=bad, timeout=30,
                                headers={"X-User-ID": "user-1"})  # fmt: skip
        upstream = "clf-v1" if through.headers["X-Variant"] == "champion" else "clf-v2"
        direct = requests.post(f"{server.url}/v2/models/{upstream}/infer", json=bad, timeout=30)
        assert 400 <= direct.status_code < 500
        assert (through.status_code, through.content) == (direct.status_code, direct.content)
        # A request id abgate cannot echo is the gateway's 400.
        odd = requests.post(gateway.url + V2.path, json=V2.body([[1.0] * 4]), timeout=30,
                            headers={"X-Request-ID": "a b"})  # fmt: skip
        assert odd.status_code == 400 and "X-Request-ID" in odd.json()["error"]
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


@pytest.mark.parametrize("http_server", ["abgate", "uvicorn"])
def test_a_dead_variant_falls_back_and_its_rows_are_no_outcomes(
    tmp_path: Path, redis_url: str, mlserver: Server, http_server: str
) -> None:
    port = int(mlserver.url.rsplit(":", 1)[1])
    dead = free_port()  # nothing listens there
    path = tmp_path / "fallback.yaml"
    path.write_text(f"""\
name: clf-fallback
model: clf
protocol: open-inference-v2
variants:
  - name: champion
    role: champion
    model_version: v1
    upstream_model: clf-v1
    endpoints: ['http://127.0.0.1:{port}']
    weight: 0
  - name: challenger
    role: challenger
    model_version: v2
    upstream_model: clf-v2
    endpoints: ['http://127.0.0.1:{dead}/mlserver']
    weight: 100
""")
    gateway = start_gateway(path, redis_url, "--server", http_server)
    try:
        rows = [[1.0, 1.0, 0.0, 0.0], [-1.0, -1.0, 0.0, 0.0]]
        body = V2.body(rows)
        answer = requests.post(gateway.url + V2.path, json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        assert answer.headers["X-Variant"] == "champion"  # the fallback answered
        direct = requests.post(mlserver.url + "/v2/models/clf-v1/infer", json=body, timeout=30)
        assert V2.read(answer.json()) == V2.read(direct.json())
        rid = answer.headers["X-Request-ID"]
        # Rows the assigned variant did not answer are no outcomes, said at once.
        for suffix in (".0", ".1"):
            late = requests.post(gateway.url + "/feedback", timeout=30,
                                 json={"request_id": rid + suffix, "label": 1})  # fmt: skip
            assert late.status_code == 409, late.text
        # Readiness is asked of the unit's variant's server: down, so abgate says so.
        ready = requests.get(gateway.url + "/v2/models/clf/ready", timeout=30)
        assert ready.status_code == 503 and "challenger" in ready.json()["error"]
    finally:
        gateway.stop()
