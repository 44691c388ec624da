"""The benchmark's floor: the gateway's server and client forwarding, and nothing else."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import pytest

from bench.bare_forwarder import bare_gateway
from bench.gateway_vs_nginx import start_constant_worker, write_experiment

pytestmark = pytest.mark.integration


def test_bare_forwarder_returns_the_champions_answer_untouched(tmp_path: Path) -> None:
    workers = [start_constant_worker("v1"), start_constant_worker("v2")]
    try:
        ports = [urlsplit(w.url).port or 80 for w in workers]
        config = write_experiment(tmp_path / "bench.yaml", ports[0], ports[1])

        async def forward() -> list[tuple[int, dict[str, object], int]]:
            gateway = bare_gateway(config)
            await gateway.startup()
            try:
                answers = []
                for user in range(20):  # whatever the unit: always the champion
                    headers = {b"x-user-id": str(user).encode()}
                    # Called as the gateway's server calls it (with the peer's address).
                    body = b'{"features": [1]}'
                    answer = await gateway.hotpath.predict(body, headers, None, "127.0.0.1")
                    answers.append((answer.status, orjson.loads(answer.body), len(answer.headers)))
                return answers
            finally:
                await gateway.shutdown()

        answers = asyncio.run(forward())
    finally:
        for worker in workers:
            worker.stop()
    assert {status for status, _, _ in answers} == {200}
    assert {body["model_version"] for _, body, _ in answers} == {"v1"}
    # nothing added: no variant, no request id, no headers of abgate's own
    assert all("variant" not in body and "request_id" not in body for _, body, _ in answers)
    assert {count for _, _, count in answers} == {0}
