"""Soak: many requests as fast as the machine goes, feedback on half; nothing lost, no leak.

    python -m bench.soak [--requests 100000] [--concurrency 32] [--feedback-share 0.5]
                         [--workers 2]

A real embedded Redis, two constant-time workers (``bench.constant_worker``,
champion v1 90 % and canary v2 10 %, so the gateway is what is soaked, not a
model) and one ``abgate gateway --workers N`` (2 by default, as docker-compose
runs it). An asyncio client sends exactly ``--requests`` predict calls over
``--concurrency`` keep-alive connections, a different ``X-User-ID`` each, and
posts feedback (a label) for a fixed share of the answers the moment each
answer arrives, each on a new connection, so the kernel hands it to either
process, often the one that has not got the request's mapping yet. The
gateway's resident memory (RSS of all its processes, from /proc) is sampled
after every tenth of the run.

Pass criteria, checked after the run: no client error (predict or feedback);
every feedback accepted (200, or 202 while it waits for its request); the
requests recorded in Redis equal the requests sent and the feedback recorded
equals the feedback accepted (zero lost outcomes), none left waiting and none
expired; no outcome dropped (``/ready``); the gateway's RSS at the end within
10 % of its RSS after the first 10 % of the requests; SIGTERM then stops the
gateway with exit code 0. Exit code 0 when every criterion holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import requests

from abgate.processes import Child, abgate_argv, start_child, wait_http_ok
from abgate.redis_server import free_port, start_redis
from bench.gateway_vs_nginx import start_constant_worker, write_experiment
from core.schema import parse_outcome_fields
from core.store import Store

__all__ = ["SoakResult", "main", "soak"]

MAX_RSS_GROWTH = 0.10
ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


@dataclass
class SoakResult:
    """What the client saw, what Redis holds, and the gateway's memory over the run."""

    requests: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    feedback_sent: int = 0
    feedback_ok: int = 0  # accepted: 200 (counted) or 202 (waiting for its request)
    feedback_waited: int = 0  # of which 202
    feedback_pending: int = -1  # still parked in Redis at the end (/ready)
    feedback_expired: int = -1
    seconds: float = 0.0
    rss_kib: list[tuple[int, int]] = field(default_factory=list)  # (requests done, RSS KiB)
    recorded_requests: int = 0
    recorded_feedback: int = 0
    dropped: int = -1
    exit_code: int | None = None

    @property
    def rate(self) -> float:
        """Predict requests per second over the whole run."""
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def rss_growth(self) -> float:
        """RSS at the end relative to RSS after the first tenth of the run."""
        if len(self.rss_kib) < 2:
            return float("inf")
        return self.rss_kib[-1][1] / self.rss_kib[0][1] - 1.0

    def failures(self) -> list[str]:
        """Every pass criterion that does not hold, in words."""
        found = []
        if self.errors or self.ok != self.requests:
            found.append(f"client errors: {dict(self.errors)}")
        if self.feedback_ok != self.feedback_sent:
            found.append(f"feedback accepted {self.feedback_ok} of {self.feedback_sent}")
        if self.recorded_requests != self.ok:
            found.append(f"recorded {self.recorded_requests} requests, answered {self.ok}")
        if self.recorded_feedback != self.feedback_ok:
            found.append(f"recorded {self.recorded_feedback} feedback, accepted {self.feedback_ok}")
        if self.feedback_pending != 0 or self.feedback_expired != 0:
            found.append(
                f"feedback never joined: {self.feedback_pending} pending, "
                f"{self.feedback_expired} expired"
            )
        if self.dropped != 0:
            found.append(f"dropped outcomes: {self.dropped}")
        if not abs(self.rss_growth) <= MAX_RSS_GROWTH:
            found.append(f"RSS grew {self.rss_growth:+.1%} (limit ±{MAX_RSS_GROWTH:.0%})")
        if self.exit_code != 0:
            found.append(f"gateway exit code {self.exit_code} after SIGTERM")
        return found


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` and its child processes in KiB (Linux /proc)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    total = 0
    for one in (pid, *map(int, children)):
        for line in Path(f"/proc/{one}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    if not total:
        raise RuntimeError(f"no VmRSS for pid {pid}")
    return total


async def drive(url: str, pid: int, total: int, concurrency: int, feedback_share: float,
                result: SoakResult) -> None:  # fmt: skip
    # Feedback on a new connection each: any process may take it, as from real clients.
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True, limit=concurrency),
        timeout=aiohttp.ClientTimeout(total=30),
    ) as feedback_session:
        await _drive(url, pid, total, concurrency, feedback_share, result, feedback_session)


async def _drive(url: str, pid: int, total: int, concurrency: int, feedback_share: float,
                 result: SoakResult, feedback_session: aiohttp.ClientSession) -> None:  # fmt: skip
    """Send ``total`` predict calls (feedback on a share of them), sampling RSS every tenth."""
    rng = random.Random(0)
    step = max(total // 10, 1)
    issued = 0

    async def one(session: aiohttp.ClientSession, index: int) -> None:
        headers = {"X-User-ID": f"user-{index}", "X-Request-ID": f"soak-{index}"}
        try:
            async with session.post(url + "/predict", json={"features": ROW},
                                    headers=headers) as response:  # fmt: skip
                await response.read()
                if response.status != 200:
                    result.errors[f"predict {response.status}"] += 1
                    return
        except (TimeoutError, aiohttp.ClientError) as exc:
            result.errors[f"predict {type(exc).__name__}"] += 1
            return
        result.ok += 1
        if rng.random() < feedback_share:
            result.feedback_sent += 1
            payload = {"request_id": f"soak-{index}", "label": rng.randrange(2)}
            try:
                async with feedback_session.post(url + "/feedback", json=payload) as response:
                    await response.read()
                    if response.status in (200, 202):
                        result.feedback_ok += 1
                        result.feedback_waited += int(response.status == 202)
                    else:
                        result.errors[f"feedback {response.status}"] += 1
            except (TimeoutError, aiohttp.ClientError) as exc:
                result.errors[f"feedback {type(exc).__name__}"] += 1

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal issued
        while issued < total:
            index = issued
            issued += 1
            await one(session, index)
            done = result.ok + sum(result.errors.values())
            if len(result.rss_kib) < done // step:
                result.rss_kib.append((done, rss_kib(pid)))

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    result.requests = issued
    if not result.rss_kib or result.rss_kib[-1][0] != result.requests:
        result.rss_kib.append((result.requests, rss_kib(pid)))


def _recorded(redis_url: str) -> tuple[int, int]:
    totals = parse_outcome_fields(Store(redis_url).totals("bench"))
    requests_n = sum(v.requests for v in totals.values())
    feedback_n = sum(m.n for v in totals.values() for m in v.metrics.values())
    return requests_n, feedback_n


def soak(total: int, concurrency: int, feedback_share: float, processes: int = 2) -> SoakResult:
    """Run the whole soak and return its figures (criteria checked by ``failures()``)."""
    result = SoakResult()
    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(prefix="abgate-soak-") as tmp:
        redis = start_redis()
        stack.callback(redis.stop)
        workers: list[Child] = []
        for version in ("v1", "v2"):
            workers.append(start_constant_worker(version))
            stack.callback(workers[-1].stop)
        ports = [urlsplit(w.url).port or 80 for w in workers]
        config = write_experiment(Path(tmp) / "bench.yaml", ports[0], ports[1])
        port = free_port()
        gateway = start_child(
            "gateway",
            abgate_argv(
                "gateway", "--port", str(port), "--config", str(config), "--workers", str(processes)
            ),
            url=f"http://127.0.0.1:{port}",
            env={"REDIS_URL": redis.url, "ABGATE_LOG_LEVEL": "warning"},
        )
        stack.callback(gateway.stop)
        assert gateway.url is not None
        wait_http_ok(gateway.url + "/health", child=gateway, timeout=60)
        asyncio.run(drive(gateway.url, gateway.pid, total, concurrency, feedback_share, result))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            recorded = _recorded(redis.url)
            if recorded == (result.ok, result.feedback_ok):
                break
            time.sleep(0.1)
        time.sleep(1.5)  # a sweep of parked feedback (once a second) refreshes /ready
        # Each process answers for itself: ask until both have (new connections).
        dropped: dict[int, int] = {}
        while len(dropped) < processes and time.monotonic() < deadline:
            ready = requests.get(gateway.url + "/ready", timeout=10).json()
            dropped[ready["pid"]] = int(ready["recording"]["dropped_outcomes"])
            result.feedback_pending = int(ready["feedback"]["pending"])
            result.feedback_expired = int(ready["feedback"]["expired"])
        result.dropped = sum(dropped.values()) if len(dropped) == processes else -1
        gateway.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            result.exit_code = gateway.process.wait(timeout=30)
        result.recorded_requests, result.recorded_feedback = _recorded(redis.url)
    return result


def _report(result: SoakResult) -> str:
    first, last = result.rss_kib[0], result.rss_kib[-1]
    lines = [
        f"{result.requests} requests in {result.seconds:.1f} s: {result.rate:.0f} req/s, "
        f"{result.ok} ok, errors {dict(result.errors) or 0}",
        f"feedback: {result.feedback_ok}/{result.feedback_sent} accepted "
        f"({result.feedback_waited} with 202, joined when their request's mapping arrived); "
        f"{result.feedback_pending} pending and {result.feedback_expired} expired at the end",
        f"recorded in Redis: {result.recorded_requests} requests, "
        f"{result.recorded_feedback} feedback; dropped {result.dropped}",
        f"gateway RSS: {first[1] / 1024:.1f} MiB after {first[0]} requests, "
        f"{last[1] / 1024:.1f} MiB after {last[0]} ({result.rss_growth:+.1%})",
        "RSS by requests done: " + ", ".join(f"{n}: {kib / 1024:.1f}" for n, kib in result.rss_kib),
        f"gateway exit code after SIGTERM: {result.exit_code}",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=100_000, help="predict calls to send")
    parser.add_argument("--concurrency", type=int, default=32, help="connections in parallel")
    parser.add_argument("--feedback-share", type=float, default=0.5, help="share with feedback")
    parser.add_argument("--workers", type=int, default=2, help="gateway processes")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if not 0 <= args.feedback_share <= 1 or args.requests < 10 or args.concurrency < 1:
        parser.error("need --requests >= 10, --concurrency >= 1, 0 <= --feedback-share <= 1")
    result = soak(args.requests, args.concurrency, args.feedback_share, args.workers)
    print(_report(result))
    if args.json:
        figures: dict[str, Any] = {**asdict(result), "rate": result.rate,
                                   "rss_growth": result.rss_growth}  # fmt: skip
        args.json.write_text(json.dumps(figures, indent=2))
    failures = result.failures()
    for failure in failures:
        print(f"FAIL: {failure}")
    print("PASS" if not failures else "FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
