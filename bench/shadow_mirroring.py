"""What mirroring every request to a slow shadow costs the live requests, in one run.

    python -m bench.shadow_mirroring [--duration 5] [--repeat 5] [--connections 1,8]
                                     [--shadow-delay-ms 50] [--max-inflight 64] [--pace-ms 1]
                                     [--shadow-server idle|shared]

Four gateways (``abgate gateway``, each with its own embedded Redis) route the
same champion (``bench.constant_worker``, v1) at 100 %; two of them also mirror
every request (``sample_rate: 1.0``) to a shadow that answers
``--shadow-delay-ms`` late (``bench.constant_worker --delay-ms``: slow, but
costing no CPU): one makes its shadow calls from its shadow caller process (the
default, ``ABGATE_SHADOW_CALLS=process``), the other inline. wrk (``bench.wrk``)
loads them in rounds, after a warm-up: each round runs every gateway once per
connection count, starting with a different one each round (no gateway always
runs right after another), each connection waiting ``--pace-ms`` before each
request: a steady load below capacity, as a live service runs (at
``--pace-ms 0``, as fast as possible, the shadow's calls compete with the live
ones for the CPU and the comparison measures that instead). Each mirrored
gateway's p50 and p99 are divided by the plain one's *of the same round*, and
the table shows the medians of those ratios over the ``--repeat`` rounds (and
their range), beside the medians of the figures themselves, and the shadow's
calls answered and shed as its Redis counted them. The fourth gateway mirrors
nothing, like the first: its ratios to the first (A/A) are the noise of the
machine, the smallest difference the run can tell from none.

Where the shadow's server runs (``--shadow-server``). In production it is a model
server on its own machine; here it shares two cores with wrk, the champion and
the gateways. ``idle`` (the default) runs it at the idle scheduling class
(``SCHED_IDLE``): it gets only the CPU the others leave, as if it were elsewhere,
and the comparison measures what mirroring costs the gateway. ``shared`` runs it
like every other process: the comparison then also counts the shadow's server
taking CPU from the live requests on this machine. The gateway's own shadow
caller always runs as it does in production.

Budget: live p50 and p99 with mirroring within 5 % of without (ratio <= 1.05).
A slow shadow holds at most ``max_inflight`` calls per gateway process; beyond
that requests are shed, not queued, so the live path never waits for it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from abgate.processes import Child, wait_http_ok
from abgate.redis_server import free_port, start_redis
from bench.gateway_vs_nginx import gateway_command, start_constant_worker
from bench.server_cpu import cpu_seconds
from bench.wrk import WrkResult, run_wrk, wrk_available
from core.schema import ShadowStats, decode_stats
from core.store import Store

MAX_RATIO = 1.05  # live p50 and p99 with mirroring over without


def write_experiment(path: Path, champion: int, shadow: int | None, max_inflight: int) -> Path:
    """The benchmark experiment: the champion alone, with or without a mirrored shadow."""
    lines = [
        "name: bench",
        "model: demo",
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=5, help="rounds")
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--shadow-delay-ms", type=float, default=50.0)
    parser.add_argument("--max-inflight", type=int, default=64)
    parser.add_argument(
        "--pace-ms", type=float, default=1.0,
        help="each connection waits this long before each request (0: as fast as possible)",
    )  # fmt: skip
    parser.add_argument(
        "--shadow-server", choices=("idle", "shared"), default="idle",
        help="idle: the shadow's server takes only CPU nobody else wants, as if on its own "
        "machine; shared: it competes with the live path for this machine's cores",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if not wrk_available():
        print("wrk is not installed (apt-get install wrk): nothing measured")
        return 0
    connections = [int(c) for c in args.connections.split(",")]
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
        urls: dict[str, str] = {}
        targets: dict[str, tuple[str, int]] = {}
        redis_urls: dict[str, str] = {}
        arms = (
            ("no mirroring", None, "process"),
            ("100 % mirrored", shadow_port, "process"),
            ("mirrored inline", shadow_port, "inline"),
            ("no mirroring 2", None, "process"),  # A/A: the machine's own noise
        )
        for name, mirrored, calls in arms:
            config = write_experiment(
                Path(tmp) / f"{len(urls)}.yaml", champion_port, mirrored, args.max_inflight
            )
            redis = start_redis()
            stack.callback(redis.stop)
            port = free_port()
            log = (Path(tmp) / f"gateway-{len(urls)}.log").open("wb")
            stack.callback(log.close)
            process = subprocess.Popen(
                gateway_command(port, config), stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "REDIS_URL": redis.url, "ABGATE_SHADOW_CALLS": calls},
            )  # fmt: skip
            child = Child(name, process, f"http://127.0.0.1:{port}")
            stack.callback(child.stop)
            wait_http_ok(f"{child.url}/health", child=child, timeout=60)
            urls[name] = f"{child.url}/predict"
            targets[name] = (urls[name], process.pid)
            redis_urls[name] = redis.url
        runs = _measure(targets, connections, args.duration, args.repeat, args.pace_ms)
        time.sleep(1.0)  # the last flush (every 50 ms) and the last shadow answers
        store = Store(redis_urls["100 % mirrored"])
        stats = decode_stats(store.totals("bench"))
        store.close()
        slow = stats.shadows.get("slow", ShadowStats())
    print(f"live requests, shadow {args.shadow_delay_ms:g} ms late, max_inflight "
          f"{args.max_inflight}, pace {args.pace_ms:g} ms per connection, shadow's server "
          f"{args.shadow_server}; medians of {args.repeat} rounds of "
          f"{args.duration:g} s")  # fmt: skip
    print(f"{'gateway':<16} {'conns':>5} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6} "
          f"{'CPU us/req':>10} {'+ caller':>8}")  # fmt: skip
    ok = True
    for c in connections:
        figures = {name: _median(runs[name][c]) for name in urls}
        for name, (rps, p50, p99, errors, serving, caller) in figures.items():
            print(f"{name:<16} {c:>5} {rps:>9.0f} {p50:>8.3f} {p99:>8.3f} {errors:>6} "
                  f"{serving:>10.1f} {caller:>8.1f}")  # fmt: skip
        for name, note in (
            ("100 % mirrored", "budget"),
            ("mirrored inline", "for comparison"),
            ("no mirroring 2", "A/A: the noise of this machine"),
        ):
            ratios = _ratios(runs[name][c], runs["no mirroring"][c])
            within = all(statistics.median(ratios[k]) <= MAX_RATIO for k in ("p50", "p99"))
            if note == "budget":
                ok &= within
                note = "within" if within else "OVER"
            print(f"{'':<16} {c:>5} {name} / plain, per round: p50 {_spread(ratios['p50'])}, "
                  f"p99 {_spread(ratios['p99'])}, serving CPU per request "
                  f"{_spread(ratios['cpu'])} ({note})")  # fmt: skip
    answered = slow.requests - slow.errors
    print(
        f"shadow calls: {slow.requests} made ({answered} answered, {slow.errors} failed), "
        f"{slow.shed} shed at max_inflight, of {slow.requests + slow.shed} mirrored requests"
    )
    print(f"budget (median p50 and p99 ratios <= {MAX_RATIO:g}): {'met' if ok else 'NOT MET'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
