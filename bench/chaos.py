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
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis as redis_client
import requests
import yaml

from abgate.processes import Child, abgate_argv, start_child, wait_http_ok
from abgate.redis_server import EmbeddedRedis, free_port, start_redis
from core.schema import Keys, parse_outcome_fields
from core.store import Store

__all__ = ["ChaosResult", "chaos", "main"]

NAME = "chaos"
ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
ROOT = Path(__file__).resolve().parent.parent
ADMIN_TOKEN = "chaos-admin-token"
# Redis acknowledges a write only once it is in the AOF on disk: a SIGKILL then
# loses nothing a gateway was told was written.
REDIS_ARGS = ("--appendfsync", "always")
UNSCORED = "not answered by its variant"  # the 409 for feedback on a fallback answer


@dataclass
class ChaosResult:
    """What the clients were answered, what Redis holds, and what was done to the processes."""

    seconds: float = 0.0
    predicts_answered: int = 0  # any HTTP answer to /predict
    predicts_ok: int = 0
    predicts_lost_in_flight: int = 0  # sent, then the connection broke: outcome unknown
    failovers: int = 0  # refused at connect by one replica, sent to the other
    feedback_sent: int = 0
    feedback_accepted: int = 0  # 200 or 202, once per request id
    feedback_waited: int = 0  # of which 202
    feedback_resent: int = 0  # sent again after a lost answer
    feedback_repeated: int = 0  # answers marked "repeated"
    feedback_unscored: int = 0  # 409: the request was answered by a fallback
    # Accepted with 202 before its request was known, which then turned out to have been
    # answered by a fallback: never counted, by contract (Redis's joins hash, "unscored").
    feedback_parked_unscored: int = -1
    errors: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    exit_codes: list[int | None] = field(default_factory=list)  # gateways' SIGTERMs
    state_checks: list[str] = field(default_factory=list)  # what did not survive a restart
    recorded_requests: int = -1
    recorded_feedback: int = -1
    feedback_pending: int = -1
    feedback_expired: int = -1
    dropped: int = -1
    ramp_resumed: bool = False
    final_exit_codes: list[int | None] = field(default_factory=list)  # SIGTERM at the end
    # Accepted feedback by its first answer, and by the claim Redis holds for it at
    # the end (``missing``: never reached Redis): where any loss happened.
    feedback_answers: Counter[str] = field(default_factory=Counter)
    feedback_claims: Counter[str] = field(default_factory=Counter)
    lost_in_flight: Counter[str] = field(default_factory=Counter)

    @property
    def feedback_to_count(self) -> int:
        """Accepted feedback that must be counted: all but those of fallback answers."""
        return self.feedback_accepted - self.feedback_parked_unscored

    @property
    def lost(self) -> int:
        """Answered or accepted outcomes missing from Redis."""
        return max(0, self.predicts_answered - self.recorded_requests) + max(
            0, self.feedback_to_count - self.recorded_feedback
        )

    @property
    def duplicates(self) -> int:
        """Outcomes Redis holds beyond what the clients were answered."""
        return max(0, self.recorded_requests - self.predicts_answered) + max(
            0, self.recorded_feedback - self.feedback_to_count
        )

    def failures(self) -> list[str]:
        """Every check that does not hold, in words."""
        found = []
        if self.errors:
            found.append(f"client errors: {dict(self.errors)}")
        if self.predicts_lost_in_flight:
            found.append(f"{self.predicts_lost_in_flight} predict answers lost in flight")
        if self.recorded_requests != self.predicts_answered:
            found.append(
                f"recorded {self.recorded_requests} requests, answered {self.predicts_answered}"
            )
        if self.recorded_feedback != self.feedback_to_count:
            found.append(
                f"recorded {self.recorded_feedback} feedback, accepted {self.feedback_accepted} "
                f"of which {self.feedback_parked_unscored} for fallback answers"
            )
        if self.feedback_pending != 0 or self.feedback_expired != 0:
            found.append(
                f"feedback never joined: {self.feedback_pending} pending, "
                f"{self.feedback_expired} expired"
            )
        if self.dropped != 0:
            found.append(f"dropped outcomes: {self.dropped}")
        found += self.state_checks
        if not self.ramp_resumed:
            found.append("the ramp controller did not resume the ramp at its step")
        if any(code != 0 for code in [*self.exit_codes, *self.final_exit_codes]):
            found.append(
                f"gateway exit codes after SIGTERM: {self.exit_codes} {self.final_exit_codes}"
            )
        for event in ("worker_kills", "redis_restarts", "gateway_restarts", "applies"):
            if not self.events[event]:
                found.append(f"no {event.replace('_', ' ')} happened")
        return found


# --- the processes -------------------------------------------------------------------


def _start_worker(version: str, port: int) -> Child:
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-m", "bench.constant_worker", "--port", str(port)]
    child = start_child(f"worker-{version}", [*argv, "--version", version],
                        url=f"http://127.0.0.1:{port}", env=env)  # fmt: skip
    wait_http_ok(f"{child.url}/ready", child=child, timeout=15)
    return child


def _write_config(path: Path, ports: Sequence[int], timeout_ms: int) -> Path:
    variants = [
        {"name": "champion", "role": "champion", "model_version": "v1",
         "endpoints": [f"http://127.0.0.1:{ports[0]}"], "weight": 90, "timeout_ms": timeout_ms},
        {"name": "canary", "role": "canary", "model_version": "v2",
         "endpoints": [f"http://127.0.0.1:{ports[1]}"], "weight": 10, "timeout_ms": timeout_ms},
    ]  # fmt: skip
    config = {
        "name": NAME,
        "model": "demo",
        "unit": {"source": "header", "name": "X-User-ID"},
        "variants": variants,
        # A ramp that holds at its first step for the whole run (it needs hours).
        "ramp": {"variant": "canary", "steps": [10, 50, 100], "min_duration_s": 36000,
                 "min_samples": 1000000, "check_interval_s": 1, "max_duration_s": 86400,
                 "on_expiry": "rollback"},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class Cluster:
    """Every process of the run, restartable in place (same ports, same data)."""

    tmp: Path
    redis: EmbeddedRedis
    workers: dict[str, Child]
    worker_ports: dict[str, int]
    config: Path
    gateway_ports: list[int]
    gateways: list[Child | None] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.gateway_ports]

    def start_gateway(self, i: int) -> Child:
        port = self.gateway_ports[i]
        child = start_child(
            f"gateway-{i}",
            abgate_argv("gateway", "--port", str(port), "--config", str(self.config)),
            url=f"http://127.0.0.1:{port}",
            env=self.env,
        )
        wait_http_ok(f"{child.url}/health", child=child, timeout=60)
        if i < len(self.gateways):
            self.gateways[i] = child
        else:
            self.gateways.append(child)
        return child

    def stop(self) -> None:
        for child in [*self.gateways, *self.workers.values()]:
            if child is not None:
                child.stop()
        self.redis.stop()


def _snapshot(url: str) -> dict[str, Any]:
    """The raw ramp state and config as Redis holds them (compared across a restart)."""
    client = redis_client.Redis.from_url(url)
    keys = Keys(NAME)
    try:
        ramp, config, version = client.mget(keys.ramp, keys.config, keys.config_version)
        epochs = client.hgetall(keys.epochs)
    finally:
        client.close()
    return {"ramp": ramp, "config": config, "version": version, "epochs": epochs}


def _ramp(cluster: Cluster, until: Callable[[str], bool], timeout: float = 60) -> str:
    """Run ``abgate ramp`` until its output passes ``until``, then interrupt it (as Ctrl-C)."""
    out = cluster.tmp / "ramp.out"
    with out.open("w") as sink:
        process = subprocess.Popen(
            abgate_argv("ramp", str(cluster.config), "--out", str(cluster.tmp)),
            stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, **cluster.env},
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline and process.poll() is None:
                if until(out.read_text()) and _snapshot(cluster.redis.url)["ramp"]:
                    break
                time.sleep(0.1)
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)  # paused: it resumes from Redis next time
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return out.read_text()


# --- the schedule --------------------------------------------------------------------


class Schedule:
    """The faults, one every quarter of a cycle, in a thread beside the traffic."""

    def __init__(self, cluster: Cluster, result: ChaosResult, cycle: float, duration: float):
        self.cluster = cluster
        self.result = result
        self.cycle = cycle
        self.duration = duration
        self.down: set[int] = set()  # gateway replicas stopped right now
        self.stop = threading.Event()
        self.log: list[str] = []
        self.applied_timeout = 2000

    def _say(self, started: float, text: str) -> None:
        self.log.append(f"{time.monotonic() - started:6.1f} s  {text}")

    def run(self) -> None:
        steps = [self.kill_worker, self.apply_config, self.restart_redis, self.restart_gateway]
        started = time.monotonic()
        n = 0
        while not self.stop.is_set():
            at = started + (n + 1) * self.cycle / len(steps)
            if at > started + self.duration - self.cycle / (2 * len(steps)):
                return
            if self.stop.wait(max(0.0, at - time.monotonic())):
                return
            step = steps[n % len(steps)]
            try:
                self._say(started, step(started))
            except Exception as exc:  # reported as a failure, the run goes on
                self.result.errors[f"schedule {step.__name__}: {exc}"] += 1
            n += 1

    def kill_worker(self, started: float) -> str:
        cluster = self.cluster
        old = cluster.workers["canary"]
        os.kill(old.pid, signal.SIGKILL)
        old.process.wait(timeout=10)
        self.result.events["worker_kills"] += 1
        self.stop.wait(3)
        cluster.workers["canary"] = _start_worker("v2", cluster.worker_ports["canary"])
        self.result.events["worker_restarts"] += 1
        return "canary worker SIGKILLed, started again after 3 s"

    def apply_config(self, started: float) -> str:
        cluster = self.cluster
        self.applied_timeout = 2500 if self.applied_timeout == 2000 else 2000
        stored = Store(cluster.redis.url).get_config(NAME)
        config = dict(stored.config)
        config["variants"] = [{**v, "timeout_ms": self.applied_timeout} for v in config["variants"]]
        path = cluster.tmp / "applied.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        done = subprocess.run(
            abgate_argv("apply", str(path), "--reason", "chaos"), capture_output=True, text=True,
            env={**os.environ, **cluster.env}, timeout=60,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"abgate apply failed: {done.stderr.strip()}")
        self.result.events["applies"] += 1
        return f"config applied: {done.stdout.strip()}"

    def restart_redis(self, started: float) -> str:
        cluster = self.cluster
        before = _snapshot(cluster.redis.url)
        old = cluster.redis
        os.kill(old.pid, signal.SIGKILL)
        old.process.wait(timeout=10)
        self.stop.wait(2)
        cluster.redis = start_redis(data_dir=old.data_dir, port=old.port, persistence=True,
                                    extra_args=REDIS_ARGS)  # fmt: skip
        after = _snapshot(cluster.redis.url)
        self.result.events["redis_restarts"] += 1
        for key in ("ramp", "config", "version", "epochs"):
            if not before[key] or after[key] != before[key]:
                self.result.state_checks.append(f"{key} differs after Redis restart {key!r}")
        ramp = orjson.loads(after["ramp"]) if after["ramp"] else {}
        return (
            f"Redis SIGKILLed, started again from its AOF after 2 s: config v"
            f"{int(after['version'] or 0)} and ramp state (step {ramp.get('step')}, "
            f"{ramp.get('status')}) as before"
        )

    def restart_gateway(self, started: float) -> str:
        cluster = self.cluster
        i = self.result.events["gateway_restarts"] % 2
        child = cluster.gateways[i]
        assert child is not None
        self.down.add(i)
        child.process.send_signal(signal.SIGTERM)
        try:
            code: int | None = child.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
            child.stop(sig=signal.SIGKILL)
        self.result.exit_codes.append(code)
        self.stop.wait(2)
        cluster.start_gateway(i)
        self.down.discard(i)
        self.result.events["gateway_restarts"] += 1
        return f"gateway {i} SIGTERM (exit {code}), started again"


# --- the traffic ---------------------------------------------------------------------


class _BothDown(Exception):
    """Both replicas refused a call at connect for a long while."""


async def _traffic(cluster: Cluster, schedule: Schedule, result: ChaosResult, duration: float,
                   concurrency: int, feedback_share: float,
                   result_accepted: set[str]) -> None:  # fmt: skip
    rng = random.Random(7)
    urls = cluster.urls
    counter = iter(range(10**9))
    accepted = result_accepted
    deadline = time.monotonic() + duration

    async def send(session: aiohttp.ClientSession, path: str, **kw: Any) -> tuple[int, Any]:
        """POST to a replica; refused at connect: the other one (a load balancer's retry)."""
        first = rng.randrange(2)
        for attempt in range(40):
            url = urls[(first + attempt) % 2]
            try:
                async with session.post(url + path, **kw) as response:
                    return response.status, await response.json(content_type=None)
            except aiohttp.ClientOSError as exc:
                # Refused at connect, or closed by a replica shutting down before the
                # request was all sent (it had the connection in its backlog): the
                # request never reached it. Anything later is a lost answer.
                unsent = isinstance(exc, aiohttp.ClientConnectorError) or (
                    "Can not write request body" in str(exc)
                )
                if not unsent:
                    raise
                result.failovers += 1
                await asyncio.sleep(0.05 * (attempt // 2))
        raise _BothDown(path)

    async def feedback(session: aiohttp.ClientSession, rid: str) -> None:
        payload = {"request_id": rid, "label": rng.randrange(2)}
        result.feedback_sent += 1
        for _attempt in range(5):
            try:
                status, body = await send(session, "/feedback", json=payload)
            except (TimeoutError, aiohttp.ClientError, _BothDown) as exc:
                result.lost_in_flight[f"feedback {type(exc).__name__}"] += 1
                result.feedback_resent += 1  # the answer was lost: the same feedback again
                continue
            if status in (200, 202):
                result.feedback_repeated += int(bool(body.get("repeated")))
                if rid not in accepted:
                    accepted.add(rid)
                    result.feedback_accepted += 1
                    result.feedback_waited += int(status == 202)
                    result.feedback_answers[f"{status} {body.get('waiting', '')}".strip()] += 1
            elif status == 409 and UNSCORED in str(body.get("error")):
                result.feedback_unscored += 1
            else:
                result.errors[f"feedback {status}: {body.get('error', '')[:60]}"] += 1
            return
        result.errors["feedback: no answer after 5 tries"] += 1

    async def client(session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            i = next(counter)
            rid = f"chaos-{i}"
            headers = {"X-User-ID": f"user-{i}", "X-Request-ID": rid}
            try:
                status, _ = await send(session, "/predict", json={"features": ROW},
                                       headers=headers)  # fmt: skip
            except _BothDown:
                result.errors["predict: both replicas refused"] += 1
                continue
            except (TimeoutError, aiohttp.ClientError) as exc:
                result.predicts_lost_in_flight += 1
                result.lost_in_flight[f"predict {type(exc).__name__}: {exc}"[:120]] += 1
                continue
            result.predicts_answered += 1
            if status != 200:
                result.errors[f"predict {status}"] += 1
                continue
            result.predicts_ok += 1
            if rng.random() < feedback_share:
                await feedback(session, rid)

    # A new connection per call: a replica being stopped refuses new ones at once,
    # and answers every call it took.
    connector = aiohttp.TCPConnector(force_close=True, limit=2 * concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))


def _recorded(url: str) -> tuple[int, int]:
    totals = parse_outcome_fields(Store(url).totals(NAME))
    return (
        sum(v.requests for v in totals.values()),
        sum(m.n for v in totals.values() for m in v.metrics.values()),
    )


def _claims(url: str, accepted: set[str]) -> Counter[str]:
    """The status each accepted feedback's claim holds in Redis (``missing``: none)."""
    client = redis_client.Redis.from_url(url)
    keys = Keys(NAME)
    found: Counter[str] = Counter()
    try:
        rids = sorted(accepted)
        for start in range(0, len(rids), 1000):
            batch = rids[start : start + 1000]
            for raw in client.mget([keys.feedback_claim(rid) for rid in batch]):
                if raw is None:
                    found["missing"] += 1
                elif raw.startswith(b"["):
                    found[str(orjson.loads(raw)[4])] += 1
                else:
                    found["token only"] += 1
    finally:
        client.close()
    return found


def _parked_unscored(url: str) -> int:
    client = redis_client.Redis.from_url(url)
    try:
        return int(client.hget(Keys(NAME).feedback_joins, "unscored") or 0)
    finally:
        client.close()


def _settle(cluster: Cluster, result: ChaosResult) -> None:
    """Wait for every outcome to reach Redis, then read what each replica reports."""
    deadline = time.monotonic() + 90

    def settled() -> bool:
        result.feedback_parked_unscored = _parked_unscored(cluster.redis.url)
        want = (result.predicts_answered, result.feedback_to_count)
        return _recorded(cluster.redis.url) == want

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
                          _write_config(tmp / "chaos.yaml", list(worker_ports.values()), 2000),
                          [free_port(), free_port()])  # fmt: skip
        cluster.env = {
            "REDIS_URL": redis.url, "ABGATE_LOG_LEVEL": "warning",
            "ABGATE_ADMIN_TOKEN": ADMIN_TOKEN, "ABGATE_REGISTRY_DIR": str(tmp / "models"),
        }  # fmt: skip
        try:
            for (name, port), version in zip(worker_ports.items(), ("v1", "v2"), strict=True):
                workers[name] = _start_worker(version, port)
            for i in range(2):
                cluster.start_gateway(i)
            started = _ramp(cluster, lambda text: "ramping canary" in text)
            if "ramping canary" not in started:
                result.state_checks.append(f"the ramp did not start: {started.strip()[-300:]}")
            schedule = Schedule(cluster, result, cycle, duration)
            thread = threading.Thread(target=schedule.run, name="chaos-schedule", daemon=True)
            began = time.monotonic()
            thread.start()
            accepted: set[str] = set()
            asyncio.run(_traffic(cluster, schedule, result, duration, concurrency, feedback_share,
                                 accepted))  # fmt: skip
            schedule.stop.set()
            thread.join(timeout=120)
            result.seconds = time.monotonic() - began
            for line in schedule.log:
                out(line)
            _settle(cluster, result)
            result.feedback_claims = _claims(cluster.redis.url, accepted)
            resumed = _ramp(cluster, lambda text: "resuming the ramp" in text)
            result.ramp_resumed = f"resuming the ramp of {NAME} at step 1/3" in resumed
            for i, child in enumerate(cluster.gateways):
                assert child is not None
                child.process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    result.final_exit_codes.append(child.process.wait(timeout=30))
                cluster.gateways[i] = None if child.process.poll() is not None else child
            result.recorded_requests, result.recorded_feedback = _recorded(cluster.redis.url)
            result.feedback_parked_unscored = _parked_unscored(cluster.redis.url)
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
