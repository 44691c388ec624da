"""The experiment ``make demo`` ramps: its config file and its ramp plan.

Pure data and a pure transform of a config, kept beside the configs so that the
application (``abgate.demo``), the ramp's design comparison and the operating
characteristic tests all read the same plan without importing the application.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from experiments.config import ExperimentConfig

__all__ = ["DEMO_CONFIG", "DEMO_RAMP", "DEMO_RAMP_RATE", "demo_ramp_config"]

DEMO_CONFIG = Path(__file__).resolve().parent / "demo.yaml"
# The plan `make demo` ramps with, sized for its 300 requests/s (tests/ramp/test_oc.py and
# tests/ramp/test_shadow_oc.py hold it to the targets): a shadow phase first (every
# request mirrored, no user served), then the canary serves 10 % and 50 %; 100 % is the
# promotion.
DEMO_RAMP_RATE = 300.0
DEMO_RAMP: dict[str, Any] = {
    "variant": "canary",
    "steps": [10, 50],
    "min_duration_s": 3,
    "min_samples": 100,
    "check_interval_s": 1,
    "max_duration_s": 300,
    "on_srm": "hold",
    "non_inferiority_margin": 0.02,
    # Half the units mirrored: the candidate's single worker process then keeps up on a
    # busy 2-core machine. Mirroring every request once left it ~64 calls behind, and the
    # first users it served after the shadow phase waited behind them (p99 ×7, rolled back).
    "shadow": {"mirror": 0.5, "min_labels": 200, "max_duration_s": 120},
}


def demo_ramp_config(base: ExperimentConfig, canary_version: str) -> ExperimentConfig:
    """Champion v1 at 100 %, ``canary_version`` at 0 % with the demo ramp plan."""
    data = base.model_dump(mode="json")
    endpoints = {v["model_version"]: v["endpoints"] for v in data["variants"]}
    data["variants"] = [
        {
            "name": "champion",
            "role": "champion",
            "model_version": "v1",
            "endpoints": endpoints["v1"],
            "weight": 100,
        },
        {
            "name": "canary",
            "role": "canary",
            "model_version": canary_version,
            "endpoints": endpoints[canary_version],
            "weight": 0,
        },
    ]
    data["statistics"] = {**data["statistics"], "tuning_n": 500, "min_samples": 100}
    # Every process of the demo shares two cores, so p99 (on ~100 requests of a step) is
    # noisy: guard it loosely.
    data["metrics"]["guardrails"] = [
        {"name": "error_rate", "max_absolute_increase": 0.01},
        {"name": "p99_latency_ms", "max_ratio": 10.0},
    ]
    data["ramp"] = DEMO_RAMP
    return ExperimentConfig.model_validate(data)
