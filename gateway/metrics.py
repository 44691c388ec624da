"""``/metrics`` of the gateway in Prometheus text format.

Rendered from the recorder's aggregates at scrape time, so the request path
pays nothing for metrics (a client-library counter costs a lock per call).
"""

from __future__ import annotations

from collections import defaultdict

from gateway.hotpath import HotPath
from gateway.live import LiveExperiments
from gateway.outcomes import LATENCY_BOUNDS_MS, parse_outcome_fields
from gateway.recorder import Recorder

__all__ = ["render_metrics"]


def _labels(**labels: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"'
        for k, v in labels.items()
    )
    return "{" + inner + "}"


def _lifetime(recorder: Recorder) -> dict[str, dict[str, float]]:
    # Flushed totals, plus what is being written now, plus what waits in the aggregator.
    out: dict[str, defaultdict[str, float]] = {}
    for name, totals in recorder.lifetime.items():
        out.setdefault(name, defaultdict(int)).update(totals)
    pending = [((b.experiment, w), d) for b in recorder.in_flight for w, d in b.deltas.items()]
    for (name, _), delta in [*pending, *recorder.aggregator.deltas.items()]:
        target = out.setdefault(name, defaultdict(int))
        for field, amount in delta.items():
            target[field] += amount
    return {k: dict(v) for k, v in out.items()}


def render_metrics(experiments: LiveExperiments, recorder: Recorder, hotpath: HotPath) -> str:
    """The full exposition text."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    lifetime = {name: parse_outcome_fields(f) for name, f in _lifetime(recorder).items()}

    family(
        "abgate_requests", "counter", "Predict requests by experiment, assigned variant, status."
    )
    for exp, variants in sorted(lifetime.items()):
        for variant, o in sorted(variants.items()):
            if o.requests == 0:
                continue
            ok = o.requests - o.errors - o.client_errors
            for status, count in (
                ("ok", ok),
                ("error", o.errors),
                ("client_error", o.client_errors),
            ):
                labels = _labels(experiment=exp, variant=variant, status=status)
                lines.append(f"abgate_requests_total{labels} {count}")

    family(
        "abgate_fallbacks", "counter", "Requests answered by the champion after a variant failed."
    )
    for exp, variants in sorted(lifetime.items()):
        for variant, o in sorted(variants.items()):
            if o.requests:
                labels = _labels(experiment=exp, variant=variant)
                lines.append(f"abgate_fallbacks_total{labels} {o.fallbacks}")

    family("abgate_request_duration_seconds", "histogram", "Upstream latency of answered requests.")
    for exp, variants in sorted(lifetime.items()):
        for variant, o in sorted(variants.items()):
            if not o.latency.get("n"):
                continue
            cumulative = 0
            for bound, count in zip(LATENCY_BOUNDS_MS, o.latency_hist, strict=False):
                cumulative += count
                labels = _labels(experiment=exp, variant=variant, le=f"{bound / 1000:.7g}")
                lines.append(f"abgate_request_duration_seconds_bucket{labels} {cumulative}")
            labels = _labels(experiment=exp, variant=variant, le="+Inf")
            lines.append(f"abgate_request_duration_seconds_bucket{labels} {int(o.latency['n'])}")
            base = _labels(experiment=exp, variant=variant)
            lines.append(f"abgate_request_duration_seconds_sum{base} {o.latency['sum'] / 1000:.6f}")
            lines.append(f"abgate_request_duration_seconds_count{base} {int(o.latency['n'])}")

    family(
        "abgate_shadow_agreement_ratio", "gauge", "Share of shadow answers equal to the live one."
    )
    for exp, variants in sorted(lifetime.items()):
        for variant, o in sorted(variants.items()):
            compared = o.shadow.get("compared", 0)
            if compared:
                ratio = o.shadow.get("agreed", 0) / compared
                labels = _labels(experiment=exp, shadow=variant)
                lines.append(f"abgate_shadow_agreement_ratio{labels} {ratio:.6f}")

    family("abgate_variant_weight_percent", "gauge", "Configured traffic weight per variant.")
    family("abgate_config_version", "gauge", "Config version each experiment is routed with.")
    for name, live in sorted(experiments.by_name.items()):
        for variant in live.config.variants:
            weight = 0.0 if live.paused and variant.role != "champion" else variant.weight
            if live.paused and variant.role == "champion":
                weight = 100.0
            lines.append(
                f"abgate_variant_weight_percent{_labels(experiment=name, variant=variant.name)} "
                f"{weight:g}"
            )
        lines.append(f"abgate_config_version{_labels(experiment=name)} {live.version}")

    health = recorder.health()
    family("abgate_recording_lag_seconds", "gauge", "Seconds since outcomes last reached Redis.")
    lines.append(f"abgate_recording_lag_seconds {health.seconds_since_flush:.3f}")
    family("abgate_recording_pending_outcomes", "gauge", "Raw outcomes waiting to be written.")
    lines.append(f"abgate_recording_pending_outcomes {health.pending_events}")
    family(
        "abgate_dropped_outcomes", "counter", "Raw outcomes dropped because the buffer was full."
    )
    lines.append(f"abgate_dropped_outcomes_total {health.dropped_events}")
    family("abgate_recording_flush_failures", "counter", "Flushes that failed (Redis down).")
    lines.append(f"abgate_recording_flush_failures_total {health.flush_failures}")
    family("abgate_shadow_dropped", "counter", "Shadow calls skipped: too many in flight.")
    lines.append(f"abgate_shadow_dropped_total {hotpath.shadow_dropped}")
    return "\n".join(lines) + "\n"
