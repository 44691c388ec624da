"""Chaos soak: traffic with feedback while processes die on a schedule; nothing lost, nothing twice.

    python -m bench.chaos [--duration 120] [--cycle 30] [--concurrency 16]
                          [--feedback-share 0.5] [--json FILE]

A real Redis with an append-only file (fsync'd before each answer), two
constant-time workers (champion v1 90 %, canary v2 10 %, ``bench.constant_worker``),
two gateway replicas on that Redis, and a canary ramp that the real ramp
controller (``abgate ramp``) started and left running at its first step. An
asyncio client sends predict calls to either replica, each on a new connection,
and feedback (a label) for a share of the answers to either replica; a call
refused at connect, or closed before it was all sent, goes to the other replica
(as a load balancer would); a feedback whose answer is lost is sent again as it
was (it is idempotent).

Once per ``--cycle`` seconds each, a quarter of a cycle apart:

- the canary worker is SIGKILLed and started again on its port 3 s later;
- a config is applied (``abgate apply``: a new version with another timeout);
- Redis is SIGKILLed and started again from its AOF 2 s later, and the ramp
  state and the config read back are compared with what was stored before;
- one gateway replica gets SIGTERM (it must exit 0) and is started again.

At the end: the requests recorded in Redis equal the predict answers the
clients got, and the feedback recorded equals the feedback accepted (200/202),
exactly, less the accepted feedback of requests a fallback answered (the
contract never counts those: a feedback taken with 202 before its request was
known, whose request turns out to be a fallback answer, leaves the parking
uncounted, as Redis's ``unscored`` figure says); none waits or expired; no
outcome dropped; the ramp controller, started again, resumes the same ramp at
the same step; every gateway exits 0 on SIGTERM. Prints a table and exits 0
when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import requests

from abgate.processes import Child
from abgate.redis_server import free_port, start_redis
from bench.chaos_cluster import (
    ADMIN_TOKEN,
    NAME,
    REDIS_ARGS,
    Cluster,
    feedback_claims,
    parked_unscored,
    recorded_counts,
    run_ramp,
    start_worker,
    write_config,
)
from bench.chaos_result import ChaosResult
from bench.chaos_schedule import Schedule
from bench.chaos_traffic import run_traffic

__all__ = ["ChaosResult", "chaos", "main"]


def _settle(cluster: Cluster, result: ChaosResult) -> None:
    """Wait for every outcome to reach Redis, then read what each replica reports."""
    deadline = time.monotonic() + 90

    def settled() -> bool:
        result.feedback_parked_unscored = parked_unscored(cluster.redis.url)
        want = (result.predicts_answered, result.feedback_to_count)
        return recorded_counts(cluster.redis.url) == want

    while time.monotonic() < deadline and not settled():
        time.sleep(0.1)
    time.sleep(1.5)  # a sweep of parked feedback (once a second) refreshes /ready
    dropped = pending = expired = 0
    for url in cluster.urls:
        ready = requests.get(url + "/ready", timeout=10).json()
        dropped += int(ready["recording"]["dropped_outcomes"])
        pending = max(pending, int(ready["feedback"]["pending"]))  # every replica's
        expired = max(expired, int(ready["feedback"]["expired"]))
    result.dropped, result.feedback_pending, result.feedback_expired = dropped, pending, expired


def chaos(duration: float, cycle: float, concurrency: int, feedback_share: float,
          out: Callable[[str], None] = print) -> ChaosResult:  # fmt: skip
    """Run the whole chaos soak and return its figures (checked by ``failures()``)."""
    result = ChaosResult()
    with tempfile.TemporaryDirectory(prefix="abgate-chaos-") as tmp_name:
        tmp = Path(tmp_name)
        redis = start_redis(data_dir=tmp / "redis", persistence=True, extra_args=REDIS_ARGS)
        worker_ports = {"champion": free_port(), "canary": free_port()}
        workers: dict[str, Child] = {}
        cluster = Cluster(tmp, redis, workers, worker_ports,
                          write_config(tmp / "chaos.yaml", list(worker_ports.values()), 2000),
                          [free_port(), free_port()])  # fmt: skip
        cluster.env = {
            "REDIS_URL": redis.url, "ABGATE_LOG_LEVEL": "warning",
            "ABGATE_ADMIN_TOKEN": ADMIN_TOKEN, "ABGATE_REGISTRY_DIR": str(tmp / "models"),
        }  # fmt: skip
        try:
            for (name, port), version in zip(worker_ports.items(), ("v1", "v2"), strict=True):
                workers[name] = start_worker(version, port)
            for i in range(2):
                cluster.start_gateway(i)
            started = run_ramp(cluster, lambda text: "ramping canary" in text)
            if "ramping canary" not in started:
                result.state_checks.append(f"the ramp did not start: {started.strip()[-300:]}")
            schedule = Schedule(cluster, result, cycle, duration)
            thread = threading.Thread(target=schedule.run, name="chaos-schedule", daemon=True)
            began = time.monotonic()
            thread.start()
            accepted: set[str] = set()
            asyncio.run(run_traffic(cluster, result, duration, concurrency, feedback_share,
                                 accepted))  # fmt: skip
            schedule.stop.set()
            thread.join(timeout=120)
            result.seconds = time.monotonic() - began
            for line in schedule.log:
                out(line)
            _settle(cluster, result)
            result.feedback_claims = feedback_claims(cluster.redis.url, accepted)
            resumed = run_ramp(cluster, lambda text: "resuming the ramp" in text)
            result.ramp_resumed = f"resuming the ramp of {NAME} at step 1/3" in resumed
            for i, child in enumerate(cluster.gateways):
                assert child is not None
                child.process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    result.final_exit_codes.append(child.process.wait(timeout=30))
                cluster.gateways[i] = None if child.process.poll() is not None else child
            result.recorded_requests, result.recorded_feedback = recorded_counts(cluster.redis.url)
            result.feedback_parked_unscored = parked_unscored(cluster.redis.url)
        finally:
            cluster.stop()
    return result


def _table(result: ChaosResult) -> str:
    rows = [
        ("seconds of traffic", f"{result.seconds:.0f}"),
        ("predict answers", result.predicts_answered),
        ("  recorded in Redis", result.recorded_requests),
        ("feedback accepted (200/202)", result.feedback_accepted),
        ("  of which for fallback answers (never counted)", result.feedback_parked_unscored),
        ("  recorded in Redis", result.recorded_feedback),
        ("  sent again after a lost answer", result.feedback_resent),
        ("  answered as repeated", result.feedback_repeated),
        ("  refused: request answered by a fallback", result.feedback_unscored),
        ("calls refused by a stopped replica, sent to the other", result.failovers),
        ("canary worker kills / restarts",
         f"{result.events['worker_kills']} / {result.events['worker_restarts']}"),
        ("Redis restarts from its AOF", result.events["redis_restarts"]),
        ("gateway SIGTERMs / restarts",
         f"{len(result.exit_codes)} / {result.events['gateway_restarts']}"),
        ("  exit codes", f"{result.exit_codes} (at the end {result.final_exit_codes})"),
        ("configs applied", result.events["applies"]),
        ("lost", result.lost),
        ("duplicates", result.duplicates),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=120, help="seconds of traffic")
    parser.add_argument("--cycle", type=float, default=30, help="seconds per round of 4 faults")
    parser.add_argument("--concurrency", type=int, default=16, help="clients in parallel")
    parser.add_argument("--feedback-share", type=float, default=0.5, help="share with feedback")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.cycle < 20 or args.duration < args.cycle or args.concurrency < 1:
        parser.error("need --cycle >= 20, --duration >= --cycle, --concurrency >= 1")
    if not 0 < args.feedback_share <= 1:
        parser.error("need 0 < --feedback-share <= 1")
    result = chaos(args.duration, args.cycle, args.concurrency, args.feedback_share)
    print(_table(result))
    print(
        f"feedback by first answer: {dict(result.feedback_answers)}; by claim in Redis: "
        f"{dict(result.feedback_claims)}; lost in flight: {dict(result.lost_in_flight)}"
    )
    if args.json:
        # (asdict would turn each Counter into a Counter of its (key, count) pairs.)
        figures: dict[str, Any] = {
            f.name: dict(value) if isinstance(value := getattr(result, f.name), Counter) else value
            for f in fields(result)
        }
        figures.update(lost=result.lost, duplicates=result.duplicates)
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    failures = result.failures()
    for failure in failures:
        print(f"FAIL: {failure}")
    print("PASS" if not failures else "FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
