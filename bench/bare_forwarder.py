"""The floor under the gateway: its own server and upstream client, nothing else.

    python -m bench.gateway_vs_nginx --log-rates default --drift on \\
        --gateway-cmd "python -m bench.bare_forwarder --port {port} --config {config}"

Builds the real gateway (server, upstream pools, config) but answers
``/predict`` by forwarding the body to the champion's first endpoint and
returning the worker's answer untouched: no request id, assignment, JSON
parsing, recording, drift sampling or access log. The difference between this
row and the gateway's is what abgate's own work costs per request; this row
against nginx is what a Python proxy on this stack can reach at best.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.settings import Settings
from experiments.loader import load_experiment
from gateway.app import Gateway, create_app
from gateway.hotpath import Answer
from gateway.server import serve

_PREDICT = b"/predict"


def bare_gateway(config: Path, settings: Settings | None = None) -> Gateway:
    """A gateway without Redis whose ``/predict`` only forwards to the champion."""
    gateway = create_app(settings or Settings(), store=None, bootstrap=load_experiment(config))
    experiments = gateway.experiments

    async def forward(
        body: bytes, headers: dict[bytes, bytes], model: str | None, peer: str | None = None
    ) -> Answer:
        champion = experiments.for_model(model).first.champion
        pool = champion.endpoints.pick()
        response = await pool.request(_PREDICT, body, b"", champion.timeout_s)
        return Answer(response.status, response.body, [])

    gateway.hotpath.predict = forward  # type: ignore[method-assign]
    return gateway


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)

    def build(settings: Settings) -> Any:
        return bare_gateway(args.config, settings)

    return serve(build, Settings(log_level="warning"), host="127.0.0.1", port=args.port)


if __name__ == "__main__":
    raise SystemExit(main())
