"""Run wrk against a ``/predict`` URL and read back throughput and latency percentiles.

Every request POSTs the 10-float JSON body with a different ``X-User-ID``
(``USERS`` ids per wrk thread, cycled), so a gateway's assignment hashing runs
on every request. The requests are formatted once in the Lua ``init`` hook and
only picked in ``request``, to keep wrk's own cost per request low.

Figures come from wrk's ``--latency`` text output: ``Requests/sec``, the 50 % and
99 % lines of the latency distribution, non-2xx answers and socket errors.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["USERS", "WrkResult", "parse_wrk_output", "run_wrk", "wrk_available", "wrk_script"]

USERS = 10_000
BODY = '{"features": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}'

_LUA = """\
local body = '%(body)s'
local users = %(users)d
local next_thread = 0
local requests = {}
local i = 0

function setup(thread)
  thread:set("tid", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  for n = 1, users do
    local headers = {["Content-Type"] = "application/json",
                     ["X-User-ID"] = "user-" .. tid .. "-" .. n}
    requests[n] = wrk.format("POST", "%(path)s", headers, body)
  end
end

function request()
  i = i %% users + 1
  return requests[i]
end
"""

_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+([\d.]+)(us|ms|s|m|h)\s*$", re.MULTILINE)
_RPS = re.compile(r"^Requests/sec:\s+([\d.]+)", re.MULTILINE)
_TOTAL = re.compile(r"^\s*(\d+) requests in ", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput, latency percentiles in milliseconds, failures."""

    connections: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx answers plus socket errors


def wrk_available() -> bool:
    """Whether a ``wrk`` binary is on PATH."""
    return shutil.which("wrk") is not None


def wrk_script(path: str = "/predict", users: int = USERS, pace_ms: float = 0.0) -> str:
    """The Lua script: POST ``BODY`` to ``path`` with ``users`` distinct X-User-IDs per thread;
    with ``pace_ms``, each connection waits that long before each request (wrk's ``delay``
    hook), so the load is a steady rate below capacity rather than as fast as possible."""
    script = _LUA % {"body": BODY, "users": users, "path": path}
    if pace_ms > 0:
        script += f"\nfunction delay()\n  return {pace_ms:g}\nend\n"
    return script


def parse_wrk_output(text: str, connections: int) -> WrkResult:
    """Read a ``wrk --latency`` report; raise ValueError when it has no figures."""
    rps, total = _RPS.search(text), _TOTAL.search(text)
    percentiles = {
        float(p): round(float(v) * _UNIT_MS[u], 6) for p, v, u in _PERCENTILE.findall(text)
    }
    if rps is None or total is None or 50.0 not in percentiles or 99.0 not in percentiles:
        raise ValueError(f"not a wrk --latency report:\n{text.strip()}")
    non_2xx = _NON_2XX.search(text)
    socket = _SOCKET.search(text)
    errors = (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in socket.groups()) if socket else 0
    )
    return WrkResult(
        connections=connections,
        requests_per_s=float(rps.group(1)),
        p50_ms=percentiles[50.0],
        p99_ms=percentiles[99.0],
        requests=int(total.group(1)),
        errors=errors,
    )


def run_wrk(
    url: str,
    connections: int,
    duration: float,
    *,
    threads: int = 1,
    cpus: Collection[int] | None = None,
    pace_ms: float = 0.0,
) -> WrkResult:
    """Load ``url`` (its path is the one POSTed to) for ``duration`` seconds.

    ``threads`` is capped at ``connections``; ``cpus`` pins wrk to those CPUs;
    ``pace_ms`` spaces each connection's requests (``wrk_script``).
    """
    with tempfile.TemporaryDirectory(prefix="abgate-wrk-") as tmp:
        script = Path(tmp) / "predict.lua"
        script.write_text(wrk_script(urlsplit(url).path or "/", pace_ms=pace_ms))
        argv = [
            "wrk", "--latency",
            "-t", str(max(1, min(threads, connections))),
            "-c", str(connections),
            "-d", f"{max(1, round(duration))}s",
            "-s", str(script),
            url,
        ]  # fmt: skip
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        done = subprocess.run(
            argv, capture_output=True, text=True, check=False, preexec_fn=pin, timeout=duration + 30
        )
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with code {done.returncode}: {done.stderr.strip()}")
    return parse_wrk_output(done.stdout, connections)
