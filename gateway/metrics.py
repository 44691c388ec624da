"""``/metrics`` of the gateway in Prometheus text format (0.0.4).

Rendered from the recorder's aggregates at scrape time, so the request path
pays nothing for metrics (a client-library counter costs a lock per call).
Names follow the Prometheus conventions: an ``abgate_`` prefix, base units
(seconds, ratios 0-1), counters named ``..._total`` in their HELP/TYPE lines
as in their samples, histograms as ``_bucket{le}``/``_sum``/``_count``.
Counters and drift scores are this process's own (since it started), like
any Prometheus target's; sum or compare them across replicas in PromQL.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from abgate.drift import current_counts
from abgate.schema import LATENCY_BOUNDS_MS, StatsHash, decode_stats, parse_drift_fields
from analysis.drift import VariantReference, experiment_drift
from gateway.hotpath import HotPath
from gateway.live import LiveExperiment, LiveExperiments
from gateway.recorder import Recorder

__all__ = ["render_http_metrics", "render_metrics"]


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


def _drift_families(
    lines: list[str],
    family: Any,
    experiments: LiveExperiments,
    raw: dict[str, dict[str, float]],
) -> None:
    checked = []
    for name, live in sorted(experiments.by_name.items()):
        references = _references(live, experiments.drift_references.get(name, {}))
        if references:
            stats = live.config.statistics
            drift = experiment_drift(
                name,
                references,
                current_counts(live.config, parse_drift_fields(raw.get(name, {}))),
                threshold=stats.drift_psi_threshold,
                min_samples=stats.drift_min_samples,
            )
            checked.append((name, drift))
    family(
        "abgate_drift_samples_total",
        "counter",
        "Requests sampled for drift checks (features and prediction binned).",
    )
    for name, drift in checked:
        for v in drift.variants:
            labels = _labels(experiment=name, variant=v.variant)
            lines.append(f"abgate_drift_samples_total{labels} {v.samples}")
    psi_families = (
        ("feature", "features", "a feature's sampled values against the training data"),
        (
            "prediction",
            "predictions",
            "predicted classes or scores against the holdout predictions",
        ),
    )
    for label, checks, what in psi_families:
        metric = f"abgate_{label}_drift_psi"
        family(
            metric,
            "gauge",
            f"PSI of {what} (once the variant has the experiment's drift_min_samples).",
        )
        for name, drift in checked:
            for v in drift.variants:
                for check in getattr(v, checks) if v.samples >= drift.min_samples else ():
                    labels = _labels(experiment=name, variant=v.variant, **{label: check.name})
                    lines.append(f"{metric}{labels} {check.psi:.6f}")
    family(
        "abgate_drift_alert",
        "gauge",
        "1 when a feature or prediction check is over its PSI threshold on enough samples.",
    )
    for name, drift in checked:
        for v in drift.variants:
            for check in (*v.features, *v.predictions):
                labels = _labels(experiment=name, variant=v.variant, check=check.name)
                lines.append(f"abgate_drift_alert{labels} {int(check.alert)}")


def _feedback_families(lines: list[str], family: Any, recorder: Recorder) -> None:
    family(
        "abgate_feedback_total",
        "counter",
        "Feedback this process received, by what became of it: counted, pending (parked "
        "until its request is known), duplicate (another feedback for the request was "
        "taken), repeat (the same feedback again, answered as the first time), unknown, "
        "buffered (Redis unreachable), "
        "refused (buffer full), and buffered_* once a buffered one was written.",
    )
    for name, counts in sorted(recorder.feedback_results.items()):
        for result, count in sorted(counts.items()):
            lines.append(f"abgate_feedback_total{_labels(experiment=name, result=result)} {count}")
    family(
        "abgate_feedback_pending",
        "gauge",
        "Feedback parked in Redis until its request's mapping arrives (every replica's: "
        "take the max across replicas, not the sum).",
    )
    for name, joins in sorted(recorder.feedback_joins.items()):
        lines.append(f"abgate_feedback_pending{_labels(experiment=name)} {joins.pending}")
    family(
        "abgate_feedback_expired_total",
        "counter",
        "Parked feedback this process expired because its request never became known "
        "within ABGATE_REQUEST_TTL_S (lost labels; sum across replicas).",
    )
    for name in sorted(set(recorder.feedback_joins) | set(recorder.feedback_expired)):
        count = recorder.feedback_expired[name]
        lines.append(f"abgate_feedback_expired_total{_labels(experiment=name)} {count}")
    family(
        "abgate_feedback_waiting_for_redis",
        "gauge",
        "Feedback received while Redis was unreachable, buffered until a flush succeeds.",
    )
    lines.append(f"abgate_feedback_waiting_for_redis {recorder.health().feedback_buffered}")


def _references(live: LiveExperiment, stored: dict[str, Any]) -> dict[str, VariantReference]:
    return {
        v.name: VariantReference.from_json(v.model_version, stored[v.model_version])
        for v in live.config.variants
        if stored.get(v.model_version)
    }


def render_metrics(experiments: LiveExperiments, recorder: Recorder, hotpath: HotPath) -> str:
    """The full exposition text."""
    lines: list[str] = []

    def family(name: str, kind: str, help_text: str) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")

    raw = _lifetime(recorder)
    decoded: dict[str, StatsHash] = {name: decode_stats(f) for name, f in raw.items()}
    lifetime = {name: d.variants() for name, d in decoded.items()}
    shadows = {name: d.shadows for name, d in decoded.items()}

    family(
        "abgate_requests_total",
        "counter",
        "Predict requests by experiment, assigned variant, status.",
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
        "abgate_fallbacks_total",
        "counter",
        "Requests answered by the champion after a variant failed.",
    )
    for exp, variants in sorted(lifetime.items()):
        for variant, o in sorted(variants.items()):
            if o.requests:
                labels = _labels(experiment=exp, variant=variant)
                lines.append(f"abgate_fallbacks_total{labels} {o.fallbacks}")

    family("abgate_request_duration_seconds", "histogram", "Upstream latency of answered requests.")
    for exp, variants in sorted(lifetime.items()):
        for variant, o in sorted(variants.items()):
            if not o.latency_ms.n or o.latency is None:
                continue
            cumulative = 0
            for bound, count in zip(LATENCY_BOUNDS_MS, o.latency.counts, strict=False):
                cumulative += count
                labels = _labels(experiment=exp, variant=variant, le=f"{bound / 1000:.7g}")
                lines.append(f"abgate_request_duration_seconds_bucket{labels} {cumulative}")
            labels = _labels(experiment=exp, variant=variant, le="+Inf")
            lines.append(f"abgate_request_duration_seconds_bucket{labels} {o.latency_ms.n}")
            base = _labels(experiment=exp, variant=variant)
            lines.append(f"abgate_request_duration_seconds_sum{base} {o.latency_ms.sum / 1000:.6f}")
            lines.append(f"abgate_request_duration_seconds_count{base} {o.latency_ms.n}")

    family(
        "abgate_shadow_agreement_ratio", "gauge", "Share of shadow answers equal to the live one."
    )
    for exp, by_shadow in sorted(shadows.items()):
        for variant, o in sorted(by_shadow.items()):
            compared = o.compared
            if compared:
                ratio = o.agreed / compared
                labels = _labels(experiment=exp, shadow=variant)
                lines.append(f"abgate_shadow_agreement_ratio{labels} {ratio:.6f}")

    family(
        "abgate_shadow_comparisons_total",
        "counter",
        "Shadow answers compared with the live answer, by whether they agreed.",
    )
    for exp, by_shadow in sorted(shadows.items()):
        for variant, o in sorted(by_shadow.items()):
            compared = o.compared
            if compared:
                agreed = o.agreed
                for result, count in (("agreed", agreed), ("disagreed", compared - agreed)):
                    labels = _labels(experiment=exp, shadow=variant, result=result)
                    lines.append(f"abgate_shadow_comparisons_total{labels} {count}")

    family(
        "abgate_variant_weight_ratio",
        "gauge",
        "Share of traffic (0-1) each variant is routed now (paused: all to the champion).",
    )
    for name, live in sorted(experiments.by_name.items()):
        for variant in live.config.variants:
            weight = 0.0 if live.paused and variant.role != "champion" else variant.weight
            if live.paused and variant.role == "champion":
                weight = 100.0
            labels = _labels(experiment=name, variant=variant.name)
            lines.append(f"abgate_variant_weight_ratio{labels} {weight / 100:g}")
    family("abgate_config_version", "gauge", "Config version each experiment is routed with.")
    for name, live in sorted(experiments.by_name.items()):
        lines.append(f"abgate_config_version{_labels(experiment=name)} {live.version}")

    family(
        "abgate_ramp_step",
        "gauge",
        "Index (from 0) of the ramp step in progress or last reached, as stored in Redis.",
    )
    ramps = [
        (name, state)
        for name in sorted(experiments.by_name)
        if isinstance((state := experiments.ramp_states.get(name, {})).get("step"), int)
    ]
    for name, state in ramps:
        lines.append(f"abgate_ramp_step{_labels(experiment=name)} {state['step']}")
    family("abgate_ramp_running", "gauge", "1 while a canary ramp is in progress, else 0.")
    for name, state in ramps:
        running = int(state.get("status") == "running")
        lines.append(f"abgate_ramp_running{_labels(experiment=name)} {running}")

    _drift_families(lines, family, experiments, raw)

    health = recorder.health()
    family("abgate_recording_lag_seconds", "gauge", "Seconds since outcomes last reached Redis.")
    lines.append(f"abgate_recording_lag_seconds {health.seconds_since_flush:.3f}")
    family("abgate_recording_pending_outcomes", "gauge", "Raw outcomes waiting to be written.")
    lines.append(f"abgate_recording_pending_outcomes {health.pending_events}")
    family(
        "abgate_dropped_outcomes_total",
        "counter",
        "Raw outcomes dropped because the buffer was full.",
    )
    lines.append(f"abgate_dropped_outcomes_total {health.dropped_events}")
    family("abgate_recording_flush_failures_total", "counter", "Flushes that failed (Redis down).")
    lines.append(f"abgate_recording_flush_failures_total {health.flush_failures}")
    _feedback_families(lines, family, recorder)
    family("abgate_shadow_dropped_total", "counter", "Shadow calls skipped: too many in flight.")
    lines.append(f"abgate_shadow_dropped_total {hotpath.shadow_dropped}")
    return "\n".join(lines) + "\n"


def render_http_metrics(
    *, open_connections: int, refused: int, heads_refused: int, timed_out: dict[str, int]
) -> str:
    """The HTTP server's connection figures (abgate's own server only), this process's."""
    lines = [
        "# HELP abgate_http_connections Client connections open.",
        "# TYPE abgate_http_connections gauge",
        f"abgate_http_connections {open_connections}",
        "# HELP abgate_http_connections_refused_total Connections answered 503 at the "
        "connection limit.",
        "# TYPE abgate_http_connections_refused_total counter",
        f"abgate_http_connections_refused_total {refused}",
        "# HELP abgate_http_heads_refused_total Request heads over the byte or header-field "
        "limit (431/414).",
        "# TYPE abgate_http_heads_refused_total counter",
        f"abgate_http_heads_refused_total {heads_refused}",
        "# HELP abgate_http_timeouts_total Connections cut at a deadline: a request head or "
        "body too slow (408), a client reading no answer (write).",
        "# TYPE abgate_http_timeouts_total counter",
    ]
    lines += [f'abgate_http_timeouts_total{{kind="{k}"}} {n}' for k, n in sorted(timed_out.items())]
    return "\n".join(lines) + "\n"
