"""What recording costs the hot path per request, measured in process.

    python -m bench.record_request [--requests 300000] [--repeat 7]

Times ``Recorder.record_request`` (the one call the request path makes to
record an answer: the aggregator's counters, the raw event and the
request->variant mapping) and ``OutcomeAggregator.add_request`` alone, on two
variants at 90/10, and prints the median and smallest CPU time (process time,
so that other processes on a busy machine count less) per call over the repeats.
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time
from collections.abc import Sequence

from gateway.outcomes import OutcomeAggregator
from gateway.recorder import Recorder

__all__ = ["main"]


# The epoch (config version) is a positional argument since requests are counted per
# epoch; the code before took none. Both are called the way the hot path calls them.
def _time_aggregator(n: int) -> float:
    agg = OutcomeAggregator(60)
    variants = ["canary" if i % 10 == 0 else "champion" for i in range(1000)]
    per_epoch = "epoch" in inspect.signature(agg.add_request).parameters
    now = time.time()
    started = time.process_time_ns()
    if per_epoch:
        for i in range(n):
            agg.add_request("bench", variants[i % 1000], 7, ok=True, client_error=False,
                            latency_ms=1.5, fallback=False, ts=now)  # fmt: skip
    else:
        for i in range(n):
            agg.add_request("bench", variants[i % 1000], ok=True, client_error=False,
                            latency_ms=1.5, fallback=False, ts=now)  # fmt: skip
    return (time.process_time_ns() - started) / n


def _time_recorder(n: int) -> float:
    recorder = Recorder(None, max_pending=10 * n)
    variants = ["canary" if i % 10 == 0 else "champion" for i in range(1000)]
    ids = [f"{i:024x}" for i in range(n)]
    per_epoch = "epoch" in inspect.signature(recorder.record_request).parameters
    now = time.time()
    started = time.process_time_ns()
    if per_epoch:
        for i in range(n):
            recorder.record_request(
                "bench", variants[i % 1000], "v1", 7, ok=True, client_error=False,
                latency_ms=1.5, fallback=False, request_id=ids[i], prediction=1, error=None,
                ts=now,
            )  # fmt: skip
    else:
        for i in range(n):
            recorder.record_request(
                "bench", variants[i % 1000], "v1", ok=True, client_error=False, latency_ms=1.5,
                fallback=False, request_id=ids[i], prediction=1, error=None, ts=now,
            )  # fmt: skip
    return (time.process_time_ns() - started) / n


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=300_000, help="calls per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings per figure (median)")
    args = parser.parse_args(argv)
    agg = [_time_aggregator(args.requests) for _ in range(args.repeat)]
    rec = [_time_recorder(args.requests) for _ in range(args.repeat)]
    print(f"OutcomeAggregator.add_request: {statistics.median(agg):6.0f} ns/call "
          f"(min {min(agg):.0f}, max {max(agg):.0f}, {args.repeat} x {args.requests})")  # fmt: skip
    print(f"Recorder.record_request:       {statistics.median(rec):6.0f} ns/call "
          f"(min {min(rec):.0f}, max {max(rec):.0f}, {args.repeat} x {args.requests})")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
