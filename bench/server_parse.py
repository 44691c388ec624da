"""CPU per request of abgate's HTTP server alone: parse, limits, answer, no sockets.

    python -m bench.server_parse

One ``Connection`` of ``gateway/http_protocol.py`` is fed 20 pipelined
``GET /health`` requests (four headers each) per read, 40,000 requests per run,
through a transport that only counts the answers, on uvloop; the figure is
process CPU time per request, median and minimum of 7 runs. Without the kernel,
wrk or other processes in the measurement it moves by a few percent between
runs, so per-request costs of a few tens of nanoseconds show.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from core.settings import Settings
from experiments.loader import load_experiment
from gateway.app import create_app
from gateway.http_protocol import Connection
from gateway.server import Server

REQUEST = (
    b"GET /health HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n"
    b"X-User-ID: user-1\r\n\r\n"
)
PER_READ = 20
READS = 2000
CONFIG = """\
name: bench
model: demo
unit: {source: header, name: X-User-ID}
seed: bench
variants:
  - {name: champion, role: champion, model_version: v1,
     endpoints: ["http://127.0.0.1:9"], weight: 100, timeout_ms: 100}
"""


class _CountingTransport:
    """Takes the answers and counts them; reading and closing do nothing."""

    def __init__(self) -> None:
        self.answers = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.answers += data.count(b"HTTP/1.1 200")

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        self.closing = True

    abort = close


async def _measure() -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(CONFIG)
        gateway = create_app(Settings(), store=None, bootstrap=load_experiment(config))
    server = Server(gateway, asyncio.get_running_loop())
    batch = REQUEST * PER_READ
    runs = []
    for _ in range(7):
        connection, transport = Connection(server), _CountingTransport()
        connection.connection_made(transport)  # type: ignore[arg-type]
        started = time.process_time()
        for _ in range(READS):
            connection.data_received(batch)
            while connection.queue or connection.busy:
                await asyncio.sleep(0)
        used = time.process_time() - started
        assert transport.answers == READS * PER_READ, transport.answers
        runs.append(used / (READS * PER_READ) * 1e6)
    return runs


def main() -> int:
    """Print the CPU microseconds per request."""
    try:
        import uvloop

        runs = uvloop.run(_measure())
    except ImportError:
        runs = asyncio.run(_measure())
    print(
        f"GET /health, {PER_READ} pipelined per read: {statistics.median(runs):.3f} us CPU/request "
        f"(median of 7; min {min(runs):.3f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
