"""``/metrics`` of the gateway, built with prometheus_client's collector API.

Nothing is counted on the request path for metrics (a client-library counter
costs a lock per call): at scrape time ``GatewayCollector`` turns the
recorder's aggregates into metric families. Under ``--workers N`` every server
process publishes its raw figures in a directory shared by the gateway's
processes, and the one answering the scrape adds them up
(``gateway.process_figures``), so each scrape shows the whole gateway, whichever
process the kernel hands it to.

Names follow the Prometheus conventions: an ``abgate_`` prefix, base units
(seconds, ratios 0-1), counters named ``..._total`` in their HELP/TYPE lines
as in their samples, histograms as ``_bucket{le}``/``_sum``/``_count``.
Counters are the gateway's own since it started, like any Prometheus
target's; sum or compare them across replicas (separate gateways) in PromQL.
"""

from __future__ import annotations

import asyncio
import os
import platform
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from analysis.drift import VariantReference, experiment_drift
from core.schema import LATENCY_BOUNDS_MS, decode_stats, parse_drift_fields
from core.version import __version__
from gateway import metrics_dir
from gateway.hotpath import HotPath
from gateway.live import LiveExperiment, LiveExperiments
from gateway.process_figures import HttpFigures, ProcessFigures, ResourceFigures, combine
from gateway.recorder import Recorder
from recorded.drift import current_counts

__all__ = ["GatewayCollector", "GatewayMetrics", "render_metrics"]

PUBLISH_INTERVAL_S = 1.0  # how stale a sibling process's figures may be in a scrape
_LE = [f"{bound / 1000:.7g}" for bound in LATENCY_BOUNDS_MS]


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


def _references(live: LiveExperiment, stored: dict[str, Any]) -> dict[str, VariantReference]:
    return {
        v.name: VariantReference.from_json(v.model_version, stored[v.model_version])
        for v in live.config.variants
        if stored.get(v.model_version)
    }


class GatewayCollector(Collector):
    """Metric families of one gateway, built from its figures at each scrape."""

    def __init__(self, experiments: LiveExperiments, figures: Callable[[], ProcessFigures]):
        self.experiments = experiments
        self.figures = figures

    def collect(self) -> Iterator[Metric]:
        """Every family, in a stable order."""
        figures = self.figures()
        yield _build_info()
        yield from _request_families(figures)
        yield from _config_families(self.experiments)
        yield from _drift_families(self.experiments, figures.outcomes)
        yield from _recording_families(figures)
        yield from _feedback_families(figures)
        if figures.http is not None:
            yield from _http_families(figures.http)
        if figures.resources is not None:
            yield from _resource_families(figures.resources)


def _build_info() -> Metric:
    info = InfoMetricFamily("abgate_build", "The abgate version this gateway runs.")
    info.add_metric([], {"version": __version__, "python": platform.python_version()})
    return info


def _request_families(figures: ProcessFigures) -> Iterator[Metric]:
    decoded = {name: decode_stats(fields) for name, fields in figures.outcomes.items()}
    lifetime = sorted((name, sorted(d.variants().items())) for name, d in decoded.items())
    requests = CounterMetricFamily(
        "abgate_requests",
        "Predict requests by experiment, assigned variant, status.",
        labels=["experiment", "variant", "status"],
    )
    fallbacks = CounterMetricFamily(
        "abgate_fallbacks",
        "Requests answered by the champion after a variant failed.",
        labels=["experiment", "variant"],
    )
    duration = HistogramMetricFamily(
        "abgate_request_duration_seconds",
        "Upstream latency of answered requests.",
        labels=["experiment", "variant"],
    )
    for exp, variants in lifetime:
        for variant, o in variants:
            if o.requests == 0:
                continue
            ok = o.requests - o.errors - o.client_errors
            for status, count in (
                ("ok", ok),
                ("error", o.errors),
                ("client_error", o.client_errors),
            ):
                requests.add_metric([exp, variant, status], count)
            fallbacks.add_metric([exp, variant], o.fallbacks)
            if o.latency_ms.n and o.latency is not None:
                buckets, cumulative = [], 0
                for le, count in zip(_LE, o.latency.counts, strict=False):
                    cumulative += count
                    buckets.append((le, cumulative))
                buckets.append(("+Inf", o.latency_ms.n))
                duration.add_metric([exp, variant], buckets, o.latency_ms.sum / 1000)
    yield from (requests, fallbacks, duration)

    agreement = GaugeMetricFamily(
        "abgate_shadow_agreement_ratio",
        "Share of shadow answers equal to the live one.",
        labels=["experiment", "shadow"],
    )
    comparisons = CounterMetricFamily(
        "abgate_shadow_comparisons",
        "Shadow answers compared with the live answer, by whether they agreed.",
        labels=["experiment", "shadow", "result"],
    )
    calls = CounterMetricFamily(
        "abgate_shadow_requests",
        "Requests for each shadow: answered, failed (error or timeout), shed (not mirrored: "
        "max_inflight calls in flight).",
        labels=["experiment", "shadow", "result"],
    )
    for exp, d in sorted(decoded.items()):
        for shadow, o in sorted(d.shadows.items()):
            if o.compared:
                agreement.add_metric([exp, shadow], o.agreed / o.compared)
                comparisons.add_metric([exp, shadow, "agreed"], o.agreed)
                comparisons.add_metric([exp, shadow, "disagreed"], o.compared - o.agreed)
            calls.add_metric([exp, shadow, "answered"], o.requests - o.errors)
            calls.add_metric([exp, shadow, "failed"], o.errors)
            calls.add_metric([exp, shadow, "shed"], o.shed)
    yield from (agreement, comparisons, calls)


def _config_families(experiments: LiveExperiments) -> Iterator[Metric]:
    weights = GaugeMetricFamily(
        "abgate_variant_weight_ratio",
        "Share of traffic (0-1) each variant is routed now (paused: all to the champion).",
        labels=["experiment", "variant"],
    )
    versions = GaugeMetricFamily(
        "abgate_config_version",
        "Config version each experiment is routed with.",
        labels=["experiment"],
    )
    for name, live in sorted(experiments.by_name.items()):
        for variant in live.config.variants:
            weight = 0.0 if live.paused and variant.role != "champion" else variant.weight
            if live.paused and variant.role == "champion":
                weight = 100.0
            weights.add_metric([name, variant.name], weight / 100)
        versions.add_metric([name], live.version)
    step = GaugeMetricFamily(
        "abgate_ramp_step",
        "Index (from 0) of the ramp step in progress or last reached, as stored in Redis.",
        labels=["experiment"],
    )
    running = GaugeMetricFamily(
        "abgate_ramp_running",
        "1 while a canary ramp is in progress, else 0.",
        labels=["experiment"],
    )
    for name in sorted(experiments.by_name):
        state = experiments.ramp_states.get(name, {})
        if isinstance(state.get("step"), int):
            step.add_metric([name], state["step"])
            running.add_metric([name], int(state.get("status") == "running"))
    yield from (weights, versions, step, running)


def _drift_families(
    experiments: LiveExperiments, raw: dict[str, dict[str, float]]
) -> Iterator[Metric]:
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
    samples = CounterMetricFamily(
        "abgate_drift_samples",
        "Requests sampled for drift checks (features and prediction binned).",
        labels=["experiment", "variant"],
    )
    for name, drift in checked:
        for v in drift.variants:
            samples.add_metric([name, v.variant], v.samples)
    yield samples
    psi_families = (
        ("feature", "features", "a feature's sampled values against the training data"),
        (
            "prediction",
            "predictions",
            "predicted classes or scores against the holdout predictions",
        ),
    )
    for label, checks, what in psi_families:
        psi = GaugeMetricFamily(
            f"abgate_{label}_drift_psi",
            f"PSI of {what} (once the variant has the experiment's drift_min_samples).",
            labels=["experiment", "variant", label],
        )
        for name, drift in checked:
            for v in drift.variants:
                for check in getattr(v, checks) if v.samples >= drift.min_samples else ():
                    psi.add_metric([name, v.variant, check.name], round(check.psi, 6))
        yield psi
    alert = GaugeMetricFamily(
        "abgate_drift_alert",
        "1 when a feature or prediction check is over its PSI threshold on enough samples.",
        labels=["experiment", "variant", "check"],
    )
    for name, drift in checked:
        for v in drift.variants:
            for check in (*v.features, *v.predictions):
                alert.add_metric([name, v.variant, check.name], int(check.alert))
    yield alert


def _recording_families(figures: ProcessFigures) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "abgate_recording_lag_seconds",
        "Seconds since outcomes last reached Redis.",
        value=round(max(0.0, time.time() - figures.last_flush), 3),
    )
    yield GaugeMetricFamily(
        "abgate_recording_pending_outcomes",
        "Raw outcomes waiting to be written.",
        value=figures.pending_outcomes,
    )
    yield CounterMetricFamily(
        "abgate_dropped_outcomes",
        "Raw outcomes dropped because the buffer was full.",
        value=figures.dropped_outcomes,
    )
    yield CounterMetricFamily(
        "abgate_recording_flush_failures",
        "Flushes that failed (Redis down).",
        value=figures.flush_failures,
    )


def _feedback_families(figures: ProcessFigures) -> Iterator[Metric]:
    results = CounterMetricFamily(
        "abgate_feedback",
        "Feedback this gateway received, by what became of it: counted, pending (parked "
        "until its request is known), duplicate (another feedback for the request was "
        "taken), repeat (the same feedback again, answered as the first time), unknown, "
        "buffered (Redis unreachable), "
        "refused (buffer full), and buffered_* once a buffered one was written.",
        labels=["experiment", "result"],
    )
    for name, counts in sorted(figures.feedback.items()):
        for result, count in sorted(counts.items()):
            results.add_metric([name, result], count)
    pending = GaugeMetricFamily(
        "abgate_feedback_pending",
        "Feedback parked in Redis until its request's mapping arrives (every replica's: "
        "take the max across replicas, not the sum).",
        labels=["experiment"],
    )
    for name, count in sorted(figures.feedback_pending.items()):
        pending.add_metric([name], count)
    expired = CounterMetricFamily(
        "abgate_feedback_expired",
        "Parked feedback this gateway expired because its request never became known "
        "within ABGATE_REQUEST_TTL_S (lost labels; sum across replicas).",
        labels=["experiment"],
    )
    for name in sorted(set(figures.feedback_pending) | set(figures.feedback_expired)):
        expired.add_metric([name], figures.feedback_expired.get(name, 0))
    yield from (results, pending, expired)
    yield GaugeMetricFamily(
        "abgate_feedback_waiting_for_redis",
        "Feedback received while Redis was unreachable, buffered until a flush succeeds.",
        value=figures.feedback_waiting,
    )
    yield CounterMetricFamily(
        "abgate_shadow_dropped",
        "Shadow calls skipped (shed): the shadow had max_inflight calls in flight.",
        value=figures.shadow_dropped,
    )


def _http_families(http: HttpFigures) -> Iterator[Metric]:
    yield GaugeMetricFamily(
        "abgate_http_connections", "Client connections open.", value=http.open_connections
    )
    yield CounterMetricFamily(
        "abgate_http_connections_refused",
        "Connections answered 503 at the connection limit.",
        value=http.refused,
    )
    yield CounterMetricFamily(
        "abgate_http_heads_refused",
        "Request heads over the byte or header-field limit (431/414).",
        value=http.heads_refused,
    )
    timeouts = CounterMetricFamily(
        "abgate_http_timeouts",
        "Connections cut at a deadline: a request head or body too slow (408), a client "
        "reading no answer (write).",
        labels=["kind"],
    )
    for kind, count in sorted(http.timed_out.items()):
        timeouts.add_metric([kind], count)
    yield timeouts


def _resource_families(r: ResourceFigures) -> Iterator[Metric]:
    # The standard process_* names, for the gateway's server processes together.
    yield GaugeMetricFamily(
        "process_virtual_memory_bytes", "Virtual memory size in bytes.", value=r.virtual_bytes
    )
    yield GaugeMetricFamily(
        "process_resident_memory_bytes", "Resident memory size in bytes.", value=r.resident_bytes
    )
    yield GaugeMetricFamily(
        "process_start_time_seconds",
        "Start time of the process since unix epoch in seconds.",
        value=r.start_time,
    )
    yield CounterMetricFamily(
        "process_cpu_seconds", "Total user and system CPU time spent in seconds.", r.cpu_seconds
    )
    yield GaugeMetricFamily(
        "process_open_fds", "Number of open file descriptors.", value=r.open_fds
    )
    yield GaugeMetricFamily(
        "process_max_fds", "Maximum number of open file descriptors.", value=r.max_fds
    )


def _resources(collector: ProcessCollector) -> ResourceFigures | None:
    values = {s.name: s.value for family in collector.collect() for s in family.samples}
    if "process_cpu_seconds_total" not in values:
        return None  # no /proc: the platform reports no process figures
    return ResourceFigures(
        cpu_seconds=values["process_cpu_seconds_total"],
        resident_bytes=values.get("process_resident_memory_bytes", 0.0),
        virtual_bytes=values.get("process_virtual_memory_bytes", 0.0),
        open_fds=values.get("process_open_fds", 0.0),
        max_fds=values.get("process_max_fds", 0.0),
        start_time=values.get("process_start_time_seconds", 0.0),
    )


class GatewayMetrics:
    """The figures of this process, those its sibling processes publish, and the text.

    ``directory``: where the server processes of one gateway (``--workers N``)
    publish their figures; ``None`` for a single process. ``http`` is set by
    abgate's own HTTP server to report its connection figures.
    """

    def __init__(
        self,
        experiments: LiveExperiments,
        recorder: Recorder,
        hotpath: HotPath,
        *,
        directory: Path | None = None,
    ) -> None:
        self.recorder = recorder
        self.hotpath = hotpath
        self.directory = directory
        self.http: Callable[[], HttpFigures] | None = None
        self._process = ProcessCollector(registry=None)
        self._writing = threading.Lock()
        self._taken = self._written = 0
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GatewayCollector(experiments, self.figures))

    def own(self) -> ProcessFigures:
        """This process's figures now."""
        recorder = self.recorder
        health = recorder.health()
        return ProcessFigures(
            pid=os.getpid(),
            outcomes=_lifetime(recorder),
            feedback={name: dict(c) for name, c in recorder.feedback_results.items()},
            feedback_expired={
                name: recorder.feedback_expired[name]
                for name in set(recorder.feedback_joins) | set(recorder.feedback_expired)
            },
            feedback_pending={name: j.pending for name, j in recorder.feedback_joins.items()},
            shadow_dropped=self.hotpath.mirroring.dropped,
            dropped_outcomes=health.dropped_events,
            flush_failures=health.flush_failures,
            pending_outcomes=health.pending_events,
            feedback_waiting=health.feedback_buffered,
            last_flush=time.time() - health.seconds_since_flush,
            http=self.http() if self.http is not None else None,
            resources=_resources(self._process),
        )

    def figures(self) -> ProcessFigures:
        """The whole gateway's figures: this process's, plus its siblings' when shared."""
        if self.directory is None:
            return self.own()
        taken, own = self._snapshot()
        # Published first: what this scrape shows, a later one (from any process) includes.
        self._write(taken, own)
        return combine([own, *metrics_dir.read_all(self.directory, skip_pid=own.pid)], own.pid)

    def render(self) -> bytes:
        """The exposition text (Prometheus text format 0.0.4)."""
        return generate_latest(self.registry)

    def publish(self) -> None:
        """Publish this process's figures for its siblings' scrapes (no-op when alone)."""
        if self.directory is not None:
            self._write(*self._snapshot())

    def _snapshot(self) -> tuple[int, ProcessFigures]:
        self._taken += 1  # on the event loop only: no lock needed
        return self._taken, self.own()

    def _write(self, taken: int, figures: ProcessFigures) -> None:
        # One writer at a time, and figures taken later are never overwritten by earlier
        # ones the publishing thread is still writing (at shutdown, say).
        assert self.directory is not None
        with self._writing:
            if taken > self._written:
                metrics_dir.publish(self.directory, figures)
                self._written = taken

    async def publish_every(self, interval: float = PUBLISH_INTERVAL_S) -> None:
        """Publish until cancelled: a scrape sees a sibling's figures at most this stale."""
        while True:
            # The figures are taken here (a consistent copy); the file is written in a
            # thread, so a slow disk never holds up the requests this loop serves.
            await asyncio.to_thread(self._write, *self._snapshot())
            await asyncio.sleep(interval)


def render_metrics(experiments: LiveExperiments, recorder: Recorder, hotpath: HotPath) -> str:
    """The exposition text of a single-process gateway."""
    return GatewayMetrics(experiments, recorder, hotpath).render().decode()
