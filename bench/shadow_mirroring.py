"""What mirroring every request to a slow shadow costs the live requests, in one run.

    python -m bench.shadow_mirroring [--duration 5] [--repeat 5] [--connections 1,8]
                                     [--shadow-delay-ms 50] [--max-inflight 512] [--pace-ms 1]
                                     [--shadow-server idle|shared] [--calls process,inline]

Each gateway (``abgate gateway``, with its own embedded Redis) routes two
experiments to the same champion (``bench.constant_worker``, v1) at 100 %:
``plain`` mirrors nothing, ``mirrored`` mirrors every request
(``sample_rate: 1.0``) to a shadow that answers ``--shadow-delay-ms`` late
(``bench.constant_worker --delay-ms``: slow, but costing no CPU). So the
comparison is made *within one gateway process*: two processes running the
same code differ by themselves (a plain gateway's p50 over another plain
one's, with this benchmark's previous design of one gateway per arm: medians
from x0.89 to x1.04 across runs), and that is not a cost of mirroring. One gateway makes its
shadow calls from its shadow caller process (the default,
``ABGATE_SHADOW_CALLS=process``): it is judged against the budget; the other
inline, for comparison (``--calls``).

wrk (``bench.wrk``) loads them in rounds, after a warm-up: each round runs
every (gateway, experiment) once per connection count -- plain, mirrored, and
plain again (A/A) -- starting with a different one each round, each connection
waiting ``--pace-ms`` before each request: a steady load below capacity, as a
live service runs (at ``--pace-ms 0``, as fast as possible, the shadow's calls
compete with the live ones for the CPU and the comparison measures that
instead). Each mirrored run's p50 and p99 are divided by the plain run's *of
the same round and gateway*, and the table shows the medians of those ratios
over the ``--repeat`` rounds (and their range), beside the medians of the
figures themselves, and the shadow's calls answered and shed as each
gateway's Redis counted them. The plain-again ratios are the noise: the
smallest difference the run can tell from none.

``--max-inflight`` defaults to 512 so that the shadow is really mirrored every
request at eight connections (~4,000 requests a second here; a call holds its
slot ~110 ms through the shadow caller, docs/configuration.md#shadows); the
shed share is printed, and a run that sheds much measures less than 100 %
mirroring.

Where the shadow's server runs (``--shadow-server``). In production it is a model
server on its own machine; here it shares two cores with wrk, the champion and
the gateways. ``idle`` (the default) runs it at the idle scheduling class
(``SCHED_IDLE``): it gets only the CPU the others leave, as if it were elsewhere,
and the comparison measures what mirroring costs the gateway. ``shared`` runs it
like every other process: the comparison then also counts the shadow's server
taking CPU from the live requests on this machine. The gateway's own shadow
caller always runs as it does in production.

Budget: live p50 and p99 with mirroring within 5 % of without (ratio <= 1.05).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from abgate.processes import Child, wait_http_ok
from abgate.redis_server import free_port, start_redis
from bench.gateway_vs_nginx import start_constant_worker
from bench.server_cpu import cpu_seconds
from bench.wrk import WrkResult, run_wrk, wrk_available
from core.schema import ShadowStats, decode_stats
from core.store import Store
from experiments.loader import load_experiment

MAX_RATIO = 1.05  # live p50 and p99 with mirroring over without

# Where each gateway makes its shadow calls (ABGATE_SHADOW_CALLS), and its label.
GATEWAYS = {"process": "shadow caller", "inline": "inline"}
# The experiments each gateway routes, loaded in turn: "plain" twice (A/A).
ARMS = (("plain", "plain"), ("mirrored", "mirrored"), ("plain again", "plain"))


def write_experiment(
    path: Path, name: str, champion: int, shadow: int | None, max_inflight: int
) -> Path:
    """A benchmark experiment ``name`` (its model too): the champion alone, with or
    without a mirrored shadow."""
    lines = [
        f"name: {name}",
        f"model: {name}",
        "unit: {source: header, name: X-User-ID}",
        "variants:",
        "  - {name: champion, role: champion, model_version: v1,"
        f' endpoints: ["http://127.0.0.1:{champion}"], weight: 100}}',
    ]
    if shadow is not None:
        lines += [
            "shadows:",
            "  - {name: slow, model_version: v2, sample_rate: 1.0, timeout_ms: 5000,"
            f' max_inflight: {max_inflight}, endpoints: ["http://127.0.0.1:{shadow}"]}}',
        ]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class Run:
    """One wrk run against one gateway, and the CPU its processes spent on it."""

    wrk: WrkResult
    serving_us: float  # CPU of the serving process per request, microseconds
    caller_us: float  # CPU of its shadow caller process (if any) per request


def _caller_pids(pid: int) -> list[int]:
    return [p.pid for p in psutil.Process(pid).children(recursive=True)]


def _measure(
    targets: dict[str, tuple[str, int]],
    connections: Sequence[int],
    duration: float,
    repeat: int,
    pace: float,
) -> dict[str, dict[int, list[Run]]]:
    """A warm-up, then ``repeat`` rounds: per connection count, one wrk run per target,
    round ``r`` starting with target ``r`` (so the order rotates)."""
    for url, _ in targets.values():
        run_wrk(url, max(connections), 1)
    runs: dict[str, dict[int, list[Run]]] = {n: {c: [] for c in connections} for n in targets}
    names = list(targets)
    for r in range(repeat):
        for c in connections:
            for name in names[r % len(names) :] + names[: r % len(names)]:
                url, pid = targets[name]
                callers = _caller_pids(pid)
                before = cpu_seconds(pid), sum(cpu_seconds(p) for p in callers)
                result = run_wrk(url, c, duration, pace_ms=pace)
                after = cpu_seconds(pid), sum(cpu_seconds(p) for p in callers)
                n = max(result.requests, 1)
                runs[name][c].append(Run(
                    result, (after[0] - before[0]) / n * 1e6, (after[1] - before[1]) / n * 1e6
                ))  # fmt: skip
    return runs


def _ratios(runs: Sequence[Run], plain: Sequence[Run]) -> dict[str, list[float]]:
    """Per round: p50, p99 and serving CPU per request over the plain gateway's."""
    return {
        "p50": [r.wrk.p50_ms / p.wrk.p50_ms for r, p in zip(runs, plain, strict=True)],
        "p99": [r.wrk.p99_ms / p.wrk.p99_ms for r, p in zip(runs, plain, strict=True)],
        "cpu": [r.serving_us / p.serving_us for r, p in zip(runs, plain, strict=True)],
    }


def _spread(values: Sequence[float]) -> str:
    """The median of per-round ratios and their range."""
    return f"{statistics.median(values):.3f} ({min(values):.2f}-{max(values):.2f})"


def _median(runs: Sequence[Run]) -> tuple[float, float, float, int, float, float]:
    return (
        statistics.median(r.wrk.requests_per_s for r in runs),
        statistics.median(r.wrk.p50_ms for r in runs),
        statistics.median(r.wrk.p99_ms for r in runs),
        sum(r.wrk.errors for r in runs),
        statistics.median(r.serving_us for r in runs),
        statistics.median(r.caller_us for r in runs),
    )


def _start_gateway(
    stack: contextlib.ExitStack, tmp: Path, label: str, calls: str, configs: Sequence[Path]
) -> tuple[Child, str]:
    """A gateway making its shadow calls ``calls`` (process or inline), routing
    ``configs`` from its own Redis; it, and the URL of that Redis."""
    redis = start_redis()
    stack.callback(redis.stop)
    store = Store(redis.url)
    for path in configs:
        config = load_experiment(path)
        store.put_config(config.name, config.model_dump(mode="json"), actor="bench", action="apply")
    store.close()
    port = free_port()
    log = (tmp / f"gateway-{calls}.log").open("wb")
    stack.callback(log.close)
    process = subprocess.Popen(
        [sys.executable, "-m", "abgate", "gateway", "--port", str(port)],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "REDIS_URL": redis.url, "ABGATE_SHADOW_CALLS": calls},
    )  # fmt: skip
    child = Child(label, process, f"http://127.0.0.1:{port}")
    stack.callback(child.stop)
    wait_http_ok(f"{child.url}/health", child=child, timeout=60)
    return child, redis.url


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=5, help="rounds")
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--shadow-delay-ms", type=float, default=50.0)
    parser.add_argument("--max-inflight", type=int, default=512)
    parser.add_argument(
        "--pace-ms", type=float, default=1.0,
        help="each connection waits this long before each request (0: as fast as possible)",
    )  # fmt: skip
    parser.add_argument(
        "--shadow-server", choices=("idle", "shared"), default="idle",
        help="idle: the shadow's server takes only CPU nobody else wants, as if on its own "
        "machine; shared: it competes with the live path for this machine's cores",
    )  # fmt: skip
    parser.add_argument(
        "--calls", default="process,inline",
        help="where each gateway makes its shadow calls: process (the default of a gateway, "
        "judged against the budget), inline (for comparison)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not wrk_available():
        print("wrk is not installed (apt-get install wrk): nothing measured")
        return 0
    connections = [int(c) for c in args.connections.split(",")]
    gateways = [c for c in args.calls.split(",") if c]
    if not gateways or any(c not in GATEWAYS for c in gateways):
        parser.error(f"--calls: a list of {', '.join(GATEWAYS)}")
    with (
        tempfile.TemporaryDirectory(prefix="abgate-bench-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        champion = start_constant_worker("v1")
        stack.callback(champion.stop)
        shadow = start_constant_worker("v2", delay_ms=args.shadow_delay_ms)
        stack.callback(shadow.stop)
        if args.shadow_server == "idle":
            os.sched_setscheduler(shadow.process.pid, os.SCHED_IDLE, os.sched_param(0))
        champion_port, shadow_port = (urlsplit(w.url or "").port or 80 for w in (champion, shadow))
        configs = [
            write_experiment(Path(tmp) / "plain.yaml", "plain", champion_port, None, 0),
            write_experiment(
                Path(tmp) / "mirrored.yaml", "mirrored", champion_port, shadow_port,
                args.max_inflight,
            ),
        ]  # fmt: skip
        targets: dict[str, tuple[str, int]] = {}
        redis_urls: dict[str, str] = {}
        for calls in gateways:
            child, redis_urls[calls] = _start_gateway(
                stack, Path(tmp), GATEWAYS[calls], calls, configs
            )
            pid = child.process.pid
            for arm, experiment in ARMS:
                targets[f"{calls} {arm}"] = (f"{child.url}/v1/{experiment}/predict", pid)
        runs = _measure(targets, connections, args.duration, args.repeat, args.pace_ms)
        time.sleep(1.0)  # the last flush (every 50 ms) and the last shadow answers
        shadows: dict[str, ShadowStats] = {}
        for calls, url in redis_urls.items():
            store = Store(url)
            stats = decode_stats(store.totals("mirrored"))
            store.close()
            shadows[calls] = stats.shadows.get("slow", ShadowStats())
    print(f"live requests, shadow {args.shadow_delay_ms:g} ms late, max_inflight "
          f"{args.max_inflight}, pace {args.pace_ms:g} ms per connection, shadow's server "
          f"{args.shadow_server}; medians of {args.repeat} rounds of "
          f"{args.duration:g} s")  # fmt: skip
    print(f"{'gateway, experiment':<30} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'errors':>6} {'CPU us/req':>10} {'+ caller':>8}")  # fmt: skip
    ok = True
    for c in connections:
        for calls in gateways:
            for arm, _ in ARMS:
                rps, p50, p99, errors, serving, caller = _median(runs[f"{calls} {arm}"][c])
                print(f"{GATEWAYS[calls] + ', ' + arm:<30} {c:>5} {rps:>9.0f} {p50:>8.3f} "
                      f"{p99:>8.3f} {errors:>6} {serving:>10.1f} {caller:>8.1f}")  # fmt: skip
            plain = runs[f"{calls} plain"][c]
            for arm, note in (("mirrored", "budget"), ("plain again", "A/A: the noise")):
                ratios = _ratios(runs[f"{calls} {arm}"][c], plain)
                within = all(statistics.median(ratios[k]) <= MAX_RATIO for k in ("p50", "p99"))
                if note == "budget":
                    if calls == "process":
                        ok &= within
                        note = "within" if within else "OVER"
                    else:
                        note = "for comparison"
                print(f"{'':<30} {c:>5} {calls} {arm} / plain, per round: p50 "
                      f"{_spread(ratios['p50'])}, p99 {_spread(ratios['p99'])}, serving CPU "
                      f"per request {_spread(ratios['cpu'])} ({note})")  # fmt: skip
    for calls, slow in shadows.items():
        answered = slow.requests - slow.errors
        print(
            f"{GATEWAYS[calls]}: shadow calls {slow.requests} made ({answered} answered, "
            f"{slow.errors} failed), {slow.shed} shed at max_inflight "
            f"({slow.shed / max(slow.requests + slow.shed, 1):.0%}), of "
            f"{slow.requests + slow.shed} mirrored requests"
        )
    if "process" in gateways:
        print(f"budget (median p50 and p99 ratios <= {MAX_RATIO:g}): "
              f"{'met' if ok else 'NOT MET'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
