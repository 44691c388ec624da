"""Shadow mirroring: copies of a live request sent to the experiment's shadows.

A shadow answers a copy of a request nobody waits for: its answer is compared
with the live one and kept for the paired counts (``gateway/recorder.py``), and
never reaches the client. Nothing here is awaited on the request path: the
request's path mirrors once its live answer is written, and by
default the call itself is made by a child process (``gateway/shadow_calls.py``),
so its network work does not share the live requests' CPU. A shadow
with ``max_inflight`` calls in flight in this process is shed for the request
(counted, in Redis and ``/metrics``), so a slow or stuck shadow holds a
bounded number of tasks and connections.

The native ``/predict`` path mirrors through :meth:`Mirroring.mirror`; the
model servers' own protocols (``gateway/passthrough.py``) run their own calls
but take and give back slots through :meth:`Mirroring.claim` and
:meth:`Mirroring.release`, so every shadow is shed at one limit per process.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from core.tracing import Trace
from gateway.access_log import AccessLog
from gateway.live import LiveExperiment, Target
from gateway.recorder import Recorder
from gateway.shadow_calls import InlineShadowCalls, ShadowCall, ShadowCalls
from gateway.upstream import UpstreamError, UpstreamResponse

__all__ = ["Mirroring", "ShadowAnswer"]

_PREDICT_PATH = b"/predict"


class Mirroring:
    """The shadow calls of one gateway process, their slots and their counters."""

    def __init__(
        self, recorder: Recorder, access: AccessLog, caller: ShadowCalls | None = None
    ) -> None:
        self.recorder = recorder
        self.access = access
        self.caller: ShadowCalls = caller or InlineShadowCalls()
        """Who makes the calls: this process, or its shadow caller (``gateway/shadow_calls.py``)."""
        self.inflight = 0
        """Shadow calls in flight in this process, over every shadow."""
        self.dropped = 0
        """Shadow calls shed at their ``max_inflight`` since this process started."""
        # Per (experiment, shadow): its calls in flight in this process (each shadow is
        # shed at its own ``max_inflight``).
        self.calls: dict[tuple[str, str], int] = {}

    def mirror(
        self,
        live: LiveExperiment,
        unit: str,
        body: bytes,
        headers: bytes,
        live_prediction: Any,
        trace: Trace,
        request_id: str,
        request_ts: float,
    ) -> dict[str, str]:
        """Start the shadow calls of a ``/predict`` request; what happened to each
        (mirrored or shed), for the access log."""
        outcomes: dict[str, str] = {}
        for name in live.assigner.shadows_for(unit):
            shadow = self.claim(live, name, outcomes)
            if shadow is not None:
                pool = shadow.endpoints.pick()
                done = _PredictAnswer(
                    live_prediction, self, live.name, shadow.name, pool.url, trace, request_id,
                    request_ts,
                )  # fmt: skip
                self.caller.call(
                    ShadowCall(pool, _PREDICT_PATH, body, headers, shadow.timeout_s), done
                )
        return outcomes

    def claim(self, live: LiveExperiment, name: str, outcomes: dict[str, str]) -> Target | None:
        """The shadow ``name`` with one of its call slots taken, or None when it is not
        configured or shed (``max_inflight`` calls in flight here: counted). Every
        protocol's mirroring goes through it; ``release`` gives the slot back."""
        shadow = live.shadows.get(name)
        if shadow is None:
            return None
        key = (live.name, name)
        calls = self.calls.get(key, 0)
        if calls >= shadow.max_inflight:
            self.dropped += 1
            self.recorder.record_shadow_shed(live.name, name)
            outcomes[name] = "shed"
            return None
        self.calls[key] = calls + 1
        self.inflight += 1
        outcomes[name] = "mirrored"
        return shadow

    def release(self, experiment: str, name: str) -> None:
        """A shadow call ended: its slot is free again."""
        self.inflight -= 1
        key = (experiment, name)
        self.calls[key] = self.calls.get(key, 1) - 1


class ShadowAnswer:
    """What a shadow call does with how it ended: free its slot, score the answer
    (``score``: the part each protocol does its own way), log it when sampled or failed."""

    __slots__ = (
        "endpoint", "experiment", "mirroring", "request_id", "request_ts", "shadow", "started",
        "trace",
    )  # fmt: skip

    def __init__(
        self,
        mirroring: Mirroring,
        experiment: str,
        shadow: str,
        endpoint: str,
        trace: Trace,
        request_id: str,
        request_ts: float,
    ) -> None:
        self.mirroring = mirroring
        self.experiment = experiment
        self.shadow = shadow
        self.endpoint = endpoint
        self.trace = trace
        self.request_id = request_id
        self.request_ts = request_ts
        self.started = time.perf_counter()

    def __call__(self, result: UpstreamResponse | UpstreamError) -> None:
        self.mirroring.release(self.experiment, self.shadow)
        answer: UpstreamResponse | None = None
        if isinstance(result, UpstreamError):
            error: str | None = result.kind
        elif result.status >= 400:
            error = f"status {result.status}"
        else:
            answer, error = result, None
        agreed, error = self.score(answer, error)
        if self.trace.sampled or error is not None:
            self.mirroring.access.shadow(
                self.trace, self.request_id, experiment=self.experiment, shadow=self.shadow,
                endpoint=self.endpoint, ok=error is None, agreed=agreed,
                latency_ms=(time.perf_counter() - self.started) * 1000.0, error=error,
            )  # fmt: skip

    def score(
        self, answer: UpstreamResponse | None, error: str | None
    ) -> tuple[bool | None, str | None]:
        """Record the call (``answer``: a success, else None and the ``error``); whether
        it agreed with the live answer, and the error (``protocol`` for an unreadable one)."""
        raise NotImplementedError


class _PredictAnswer(ShadowAnswer):
    """A ``/predict`` shadow answer: its ``prediction`` against the live one."""

    __slots__ = ("live_prediction",)

    def __init__(self, live_prediction: Any, *args: Any) -> None:
        super().__init__(*args)
        self.live_prediction = live_prediction

    def score(
        self, answer: UpstreamResponse | None, error: str | None
    ) -> tuple[bool | None, str | None]:
        """Compare the prediction and keep it for the request's feedback."""
        agreed = None
        prediction: Any = None
        if answer is not None:
            try:
                prediction = orjson.loads(answer.body).get("prediction")
                agreed = prediction == self.live_prediction
            except (orjson.JSONDecodeError, AttributeError):
                error = "protocol"
        self.mirroring.recorder.record_shadow(
            self.experiment, self.shadow, ok=error is None, agreed=agreed,
            request_id=self.request_id, prediction=prediction, request_ts=self.request_ts,
        )  # fmt: skip
        return agreed, error
