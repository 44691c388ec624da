"""CPU the gateway's own HTTP server spends per request, measured under wrk.

    python -m bench.server_cpu [--duration 5] [--connections 32] [--repeat 3]

Starts ``abgate gateway --server abgate`` with a config routing one constant
worker (``bench.constant_worker``), loads ``GET /health`` (the server alone:
parsing, limits, one write) and ``POST /predict`` (plus assignment and the
upstream call) with wrk, and reads the gateway process's CPU time (user +
system, ``/proc/PID/stat``) before and after each run: CPU microseconds per
request hold steadier than requests per second on a machine shared with other
work, because time the gateway waits for a CPU is not counted. Each figure is
the median of ``--repeat`` runs. Needs wrk (Linux only, for ``/proc``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from abgate.processes import abgate_argv, start_child, wait_http_ok
from abgate.redis_server import free_port
from bench.wrk import run_wrk, wrk_available

CONFIG = """\
name: bench
model: demo
unit: {{source: header, name: X-User-ID}}
seed: bench
variants:
  - {{name: champion, role: champion, model_version: v1,
     endpoints: ["http://127.0.0.1:{port}"], weight: 100, timeout_ms: 2000}}
"""


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk_health(url: str, connections: int, duration: float) -> int:
    """Requests wrk completed against ``url`` (GET)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:g}s", url],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return int(out.split(" requests in ")[0].split()[-1])


def main(argv: list[str] | None = None) -> int:
    """Print CPU microseconds per request for /health and /predict."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    if not wrk_available():
        print("wrk is not installed: nothing measured", file=sys.stderr)
        return 1
    worker_port, port = free_port(), free_port()
    worker = start_child(
        "worker",
        [sys.executable, "-m", "bench.constant_worker", "--port", str(worker_port)],
        url=f"http://127.0.0.1:{worker_port}",
    )
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.yaml"
        config.write_text(CONFIG.format(port=worker_port))
        argv_ = abgate_argv("gateway", "--server", "abgate", "--port", str(port))
        env = {"ABGATE_LOG_LEVEL": "warning", "ABGATE_FLUSH_INTERVAL_S": "1"}
        gateway = start_child("gateway", [*argv_, "--config", str(config)], env=env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http_ok(f"{base}/health", child=gateway)
            wait_http_ok(f"http://127.0.0.1:{worker_port}/health", child=worker)
            for name in ("health", "predict"):
                per_request = []
                for _ in range(args.repeat):
                    before = cpu_seconds(gateway.pid)
                    if name == "health":
                        count = wrk_health(f"{base}/health", args.connections, args.duration)
                    else:
                        result = run_wrk(f"{base}/predict", args.connections, args.duration)
                        count = result.requests
                    used = cpu_seconds(gateway.pid) - before
                    per_request.append(used / max(count, 1) * 1e6)
                runs = ", ".join(f"{v:.1f}" for v in per_request)
                median = statistics.median(per_request)
                print(f"{name:8} {median:6.1f} us CPU/request (runs: {runs})")
        finally:
            gateway.stop()
            worker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
