"""The chaos soak's faults: a worker killed, a config applied, Redis and a gateway restarted."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import orjson
import yaml

from abgate.processes import abgate_argv
from abgate.redis_server import start_redis
from bench.chaos_cluster import NAME, REDIS_ARGS, Cluster, snapshot, start_worker
from bench.chaos_result import ChaosResult
from core.store import Store

__all__ = ["Schedule"]


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
        cluster.workers["canary"] = start_worker("v2", cluster.worker_ports["canary"])
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
        before = snapshot(cluster.redis.url)
        old = cluster.redis
        os.kill(old.pid, signal.SIGKILL)
        old.process.wait(timeout=10)
        self.stop.wait(2)
        cluster.redis = start_redis(data_dir=old.data_dir, port=old.port, persistence=True,
                                    extra_args=REDIS_ARGS)  # fmt: skip
        after = snapshot(cluster.redis.url)
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
