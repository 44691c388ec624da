"""What drift sampling costs the gateway per request, measured in process.

    python -m bench.drift_sampling [--rate 0.05] [--requests 200000]

End-to-end throughput on a shared machine moves by more than the few percent
in question (``bench.gateway_vs_nginx --drift both`` prints both rows), so
this measures the added work directly: for a sampled request (holdout rows of
the demo task), binning 10 features and the prediction into the reference
bins and adding the counts to the recorder's aggregate. The average cost per
request is that times the sampling rate. The flush carries at most one field
per bin (~110 per variant) more, in the Lua call it makes anyway.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Sequence

from bench.gateway_vs_nginx import drift_references
from experiments.config import ExperimentConfig
from gateway.drift_sampling import sample_every, variant_bins
from gateway.recorder import Recorder

__all__ = ["main"]

GATEWAY_US_PER_REQUEST = 42.0  # CPU per request of the whole gateway (docs/performance.md)


def _config() -> ExperimentConfig:
    variants = [
        {"name": "champion", "role": "champion", "model_version": "v1",
         "endpoints": ["http://127.0.0.1:9001"], "weight": 90},
        {"name": "canary", "role": "canary", "model_version": "v2",
         "endpoints": ["http://127.0.0.1:9002"], "weight": 10},
    ]  # fmt: skip
    return ExperimentConfig.model_validate({"name": "bench", "model": "demo", "variants": variants})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=0.05, help="sampling rate to project")
    parser.add_argument("--requests", type=int, default=200_000, help="sampled requests timed")
    args = parser.parse_args(argv)

    from model_workers.training import demo_dataset

    bins = variant_bins(_config(), drift_references())
    assert bins is not None
    champion = bins["champion"]
    rng = random.Random(0)
    rows = [[float(x) for x in row] for row in demo_dataset().x_holdout[:1000]]
    answers = [{"prediction": p, "probability": [1 - s, s]}
               for p, s in ((rng.randrange(2), rng.random()) for _ in range(1000))]  # fmt: skip
    recorder = Recorder(None)
    now = time.time()
    started = time.perf_counter()
    for i in range(args.requests):
        recorder.record_drift("bench", champion.fields_for(rows[i % 1000], answers[i % 1000]), now)
    per_sample_us = (time.perf_counter() - started) / args.requests * 1e6

    (delta,) = recorder.aggregator.drain().values()
    every = sample_every(args.rate)
    per_request_us = per_sample_us / every if every else 0.0
    print(f"binning one sampled request: {per_sample_us:.2f} us")
    print(f"fields a variant's samples spread over (added to each flush at most): {len(delta)}")
    print(
        f"at rate {args.rate:g} (1 in {every}): {per_request_us:.3f} us per request on average, "
        f"{per_request_us / GATEWAY_US_PER_REQUEST:.2%} of the gateway's "
        f"~{GATEWAY_US_PER_REQUEST:g} us per request (target < 5%)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
