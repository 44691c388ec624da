"""The request path of ``/predict``: assign → forward with fallback → record → respond.

Each step is a plain function in a module of its own (``gateway/assign.py``,
``gateway/forward.py``, ``gateway/record.py``, ``gateway/respond.py``);
``HotPath.predict`` reads the request and runs them in order, and hands shadow
copies to ``gateway/mirroring.py``. Feedback is ``gateway/feedback.py``.

Written as plain functions called from the HTTP layer, not framework routes: a
framework route costs more CPU per request than everything abgate itself does
here (measured; see docs/performance.md). No Redis call is awaited on this
path; outcomes go to the recorder's in-process buffer. The upstream and the
store are reached through the interfaces of ``gateway/edges.py``, so
``create_hot_path`` can wire the path to doubles in tests.
"""

from __future__ import annotations

import asyncio
import time
from random import random
from typing import Any

from core.errors import AbgateError, BadRequest
from core.settings import Settings
from core.tracing import Trace, continue_trace
from gateway.access_log import AccessLog
from gateway.answer import Answer, error_answer
from gateway.assign import assign, unit_of
from gateway.bodies import predict_payload
from gateway.drift_sampling import DriftSampler
from gateway.edges import FeedbackStore, UpstreamFactory
from gateway.feedback import FeedbackIntake
from gateway.forward import Forwarded, forward_with_fallback
from gateway.forwarded import TrustedProxies
from gateway.live import LiveExperiment, LiveExperiments, Target
from gateway.mirroring import Mirroring
from gateway.record import record_drift_sample, record_outcome
from gateway.recorder import Recorder
from gateway.request_ids import BAD_REQUEST_ID, new_request_id, valid_request_id
from gateway.respond import answered, log_request, unavailable
from gateway.upstream import EndpointPool

__all__ = ["Answer", "HotPath", "create_hot_path"]


class HotPath:
    """Predict and feedback for the live experiments of one gateway process."""

    def __init__(
        self,
        experiments: LiveExperiments,
        recorder: Recorder,
        store: FeedbackStore | None,
        access: AccessLog | None = None,
        *,
        drift_sample_rate: float = 0.0,
    ) -> None:
        self.experiments = experiments
        self.recorder = recorder
        self.store = store
        self.access = access or AccessLog(0.0)
        self.drift = DriftSampler(drift_sample_rate)
        self.mirroring = Mirroring(recorder, self.access)
        self._feedback = FeedbackIntake(experiments, recorder, store)

    @property
    def drift_every(self) -> int:
        """One answered request in this many is sampled for drift (0: none)."""
        return self.drift.every

    async def feedback(self, body: bytes) -> Answer:
        """Join a delayed outcome to the variant that served the request (never raises)."""
        return await self._feedback.answer(body)

    async def predict(
        self, body: bytes, headers: dict[bytes, bytes], model: str | None, peer: str | None = None
    ) -> Answer:
        """Answer one predict request (never raises); ``peer`` is the address connected from."""
        # One random draw decides the access-log sample; the trace carries it on.
        trace = continue_trace(headers.get(b"traceparent"), self.access.rate > random())
        raw_id = headers.get(b"x-request-id")
        request_id: str | None = None
        try:
            if raw_id is None:
                request_id = new_request_id()
            else:
                given = raw_id.decode("latin-1")
                if not valid_request_id(given):  # not echoed, not logged
                    raise BadRequest(BAD_REQUEST_ID)
                request_id = given
            route = self.experiments.for_model(model)
            payload = predict_payload(body)
            unit = unit_of(route.first, payload, headers, request_id)
            live = route.only
            if live is None:  # several experiments: the unit's namespace decides
                live = route.pick(unit)
            if live is None:  # outside every namespace of the model: in no experiment
                return await self._route(route.first, payload, body, headers, request_id,
                                         trace, peer, unit, holdout=True)  # fmt: skip
            return await self._route(live, payload, body, headers, request_id, trace, peer, unit)
        except AbgateError as exc:
            if trace.sampled or exc.status_code >= 500:
                client = self.access.client(peer, headers)
                self.access.rejected(trace, request_id, exc.status_code, exc.message, body, client)
            return error_answer(exc, request_id)

    async def _route(
        self,
        live: LiveExperiment,
        payload: dict[str, Any],
        body: bytes,
        headers: dict[bytes, bytes],
        request_id: str,
        trace: Trace,
        peer: str | None,
        unit: str,
        *,
        holdout: bool = False,
    ) -> Answer:
        # A holdout unit (outside every namespace) is served by the champion and, as in
        # GrowthBook, is no exposure: nothing is recorded, sampled or mirrored for it.
        chosen = assign(live, unit, headers, holdout)
        forward_headers = b"X-Request-ID: %s\r\ntraceparent: %s\r\n" % (
            request_id.encode(),
            trace.header,
        )
        now = time.time()
        forwarded = await forward_with_fallback(live, chosen, body, forward_headers)
        answer = forwarded.answer
        if not holdout:
            record_outcome(self.recorder, live, chosen, unit, request_id, forwarded, now)
            # Drift is sampled from what the assigned variant itself answered.
            drift = live.drift
            if drift is not None and forwarded.ok and not forwarded.client_error:
                assert answer is not None  # the variant answered: its answer is there
                record_drift_sample(self.recorder, self.drift, drift, live.name,
                                    chosen.name, payload["features"], answer, now)  # fmt: skip
        if answer is None:
            failed = unavailable(forwarded, request_id)
            log_request(self.access, trace, request_id, live, chosen, forwarded, failed.status,
                        None, payload, self.access.client(peer, headers))  # fmt: skip
            return failed
        if live.shadows and not forwarded.client_error and not holdout:
            # Mirrored once the live answer is written: this runs after the current turn
            # of the event loop, in which the server writes it, so the shadows' slots and
            # frames are no part of the live latency. The access record, which names what
            # became of each shadow, is written then too.
            asyncio.get_running_loop().call_soon(
                self._mirror, live, chosen, unit, body, forward_headers, forwarded, trace,
                request_id, now, payload, peer, headers,
            )  # fmt: skip
        elif trace.sampled or forwarded.error is not None:
            log_request(self.access, trace, request_id, live, chosen, forwarded,
                        forwarded.status, None, payload,
                        self.access.client(peer, headers))  # fmt: skip
        return answered(forwarded, answer, request_id)

    def _mirror(
        self,
        live: LiveExperiment,
        chosen: Target,
        unit: str,
        body: bytes,
        forward_headers: bytes,
        forwarded: Forwarded,
        trace: Trace,
        request_id: str,
        now: float,
        payload: dict[str, Any],
        peer: str | None,
        headers: dict[bytes, bytes],
    ) -> None:
        shadows = self.mirroring.mirror(
            live, unit, body, forward_headers, forwarded.prediction, trace, request_id, now
        )
        if trace.sampled or forwarded.error is not None:
            log_request(self.access, trace, request_id, live, chosen, forwarded,
                        forwarded.status, shadows, payload,
                        self.access.client(peer, headers))  # fmt: skip


def create_hot_path(
    settings: Settings,
    *,
    store: FeedbackStore | None,
    upstream: UpstreamFactory = EndpointPool,
    recorder: Recorder | None = None,
) -> HotPath:
    """The request path of one gateway process, wired to its edges.

    ``upstream`` makes the connection pool of each endpoint URL the configs name (the
    real ``EndpointPool`` by default); ``store`` joins feedback (the gateway's
    ``AsyncStore``; None: feedback is refused). Unit tests pass doubles of both.
    ``recorder`` defaults to one without a store, which keeps outcomes in the process;
    the gateway process passes its own, which flushes them to Redis.
    """
    experiments = LiveExperiments(connect=upstream)
    if recorder is None:
        recorder = Recorder(
            None,
            window_s=settings.stats_window_s,
            flush_interval_s=settings.flush_interval_s,
            max_pending=settings.max_pending_outcomes,
        )
    recorder.experiment_names = lambda: experiments.by_name.keys()
    access = AccessLog(
        settings.access_log_rate,
        payloads=settings.log_payloads,
        proxies=TrustedProxies(settings.trusted_proxies),
    )
    return HotPath(
        experiments, recorder, store, access, drift_sample_rate=settings.drift_sample_rate
    )
