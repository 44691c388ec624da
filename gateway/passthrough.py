"""Requests in a model server's own protocol, passed through to the chosen variant's server.

For experiments whose servers speak KServe V1, the Open Inference Protocol V2
or MLflow's scoring protocol (``gateway/protocols.py``). A unit is assigned
exactly as on abgate's own ``/predict``; the client's body goes untouched to
the variant's server at the protocol's path (taken from the config, never
from the request), and the server's status and body come back untouched,
with ``X-Request-ID``, ``X-Variant`` and ``X-Model-Version`` headers (and
``X-Outcome-Rows`` when the answer has several rows, each then an outcome
joined by feedback as ``<request id>.<row>``).

Kept apart from ``gateway/hotpath.py`` so that abgate's own path does no
protocol work at all; the fallback, recording and shadow steps follow it.
"""

from __future__ import annotations

import asyncio
import time
from random import random
from typing import Any

import orjson

from core.errors import AbgateError, BadRequest, UpstreamUnavailable
from core.schema import Unanswered
from core.tracing import Trace, continue_trace
from gateway.answer import Answer, error_answer
from gateway.assign import assign, recorded_unit, unit_of
from gateway.edges import Upstream
from gateway.hotpath import HotPath
from gateway.live import LiveExperiment, Target
from gateway.mirroring import ShadowAnswer
from gateway.protocols import (
    MAX_JOINABLE_ROWS,
    ProtocolCall,
    first_row,
    outcome_ids,
    predictions,
)
from gateway.request_ids import BAD_REQUEST_ID, new_request_id, valid_request_id
from gateway.shadow_calls import ShadowCall
from gateway.upstream import UpstreamError, UpstreamResponse

__all__ = ["Passthrough"]

_JSON = b"application/json"


def _parsed(body: bytes) -> Any:
    # Only read for the unit (a JSON field) and drift: the server judges the body itself.
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


class Passthrough:
    """Protocol calls for one gateway process; shares the hot path's recorder and logs."""

    def __init__(self, hot: HotPath) -> None:
        self.hot = hot

    async def call(
        self, call: ProtocolCall, body: bytes, headers: dict[bytes, bytes], peer: str | None
    ) -> Answer:
        """Answer one protocol call (never raises)."""
        hot = self.hot
        trace = continue_trace(headers.get(b"traceparent"), hot.access.rate > random())
        request_id: str | None = None
        try:
            raw_id = headers.get(b"x-request-id")
            if raw_id is None:
                request_id = new_request_id()
            else:
                request_id = raw_id.decode("latin-1")
                if not valid_request_id(request_id):
                    request_id = None  # not echoed, not logged
                    raise BadRequest(BAD_REQUEST_ID)
            route = hot.experiments.for_protocol(call.protocol, call.model)
            payload = _parsed(body) if call.operation == "predict" else None
            fields = payload if type(payload) is dict else {}
            unit = unit_of(route.first, fields, headers, request_id)
            live = route.pick(unit)
            holdout = live is None
            if live is None:  # outside every namespace of the model: in no experiment
                live = route.first
            chosen = assign(live, unit, headers, holdout)
            forward = b"X-Request-ID: %s\r\ntraceparent: %s\r\n" % (
                request_id.encode(),
                trace.header,
            )
            if call.operation != "predict":
                return await self._ask(live, chosen, call, forward, request_id)
            content_type = headers.get(b"content-type", _JSON)
            return await self._predict(
                live, chosen, call, body, payload, content_type, forward, request_id, trace,
                peer, headers, unit, holdout,
            )  # fmt: skip
        except AbgateError as exc:
            if trace.sampled or exc.status_code >= 500:
                client = hot.access.client(peer, headers)
                hot.access.rejected(trace, request_id, exc.status_code, exc.message, body, client)
            return error_answer(exc, request_id)

    @staticmethod
    async def _send(
        pool: Upstream,
        target: Target,
        operation: str,
        body: bytes,
        headers: bytes,
        content_type: bytes = _JSON,
    ) -> UpstreamResponse:
        path = pool.base_path + target.paths[operation]
        if operation == "predict":
            return await pool.request(path, body, headers, target.timeout_s, b"POST", content_type)
        # HEAD is asked as GET: an answer to HEAD has a length and no body to read.
        return await pool.request(path, b"", headers, target.timeout_s, b"GET", content_type)

    def _answer(self, response: UpstreamResponse, target: Target, request_id: str) -> Answer:
        headers = [
            (b"x-request-id", request_id.encode()),
            (b"x-variant", target.name.encode()),
            (b"x-model-version", target.model_version.encode()),
        ]
        return Answer(response.status, response.body, headers)

    async def _ask(
        self,
        live: LiveExperiment,
        chosen: Target,
        call: ProtocolCall,
        forward: bytes,
        request_id: str,
    ) -> Answer:
        """Readiness and metadata, from the server of the unit's variant; not an outcome."""
        pool = chosen.endpoints.pick()
        try:
            response = await self._send(pool, chosen, call.operation, b"", forward)
        except UpstreamError as exc:
            message = f"variant {chosen.name} is unavailable ({exc.kind})"
            status = 504 if exc.kind == "timeout" else None
            return error_answer(UpstreamUnavailable(message), request_id, status)
        return self._answer(response, chosen, request_id)

    async def _predict(
        self,
        live: LiveExperiment,
        chosen: Target,
        call: ProtocolCall,
        body: bytes,
        payload: Any,
        content_type: bytes,
        forward: bytes,
        request_id: str,
        trace: Trace,
        peer: str | None,
        headers: dict[bytes, bytes],
        unit: str,
        holdout: bool,
    ) -> Answer:
        hot = self.hot
        started = time.perf_counter()
        now = time.time()
        served_by, fallback, error = chosen, False, None
        response: UpstreamResponse | None = None
        pool = chosen.endpoints.pick()
        try:
            response = await self._send(pool, chosen, "predict", body, forward, content_type)
        except UpstreamError as exc:
            error = "5xx" if exc.kind == "protocol" else exc.kind
        if response is not None and response.status >= 500:
            error, response = "5xx", None
        if response is None and chosen is not live.champion and error in live.fallback_on:
            fallback, served_by = True, live.champion
            pool = live.champion.endpoints.pick()
            try:
                response = await self._send(
                    pool, live.champion, "predict", body, forward, content_type
                )
                if response.status >= 500:
                    response = None
            except UpstreamError:
                response = None
        latency_ms = (time.perf_counter() - started) * 1000.0
        ok = error is None
        client_error = response is not None and 400 <= response.status < 500 and ok
        found = None
        if response is not None and response.status < 300:
            found = predictions(call.protocol, _parsed(response.body))
        rows = len(found) if found else 1
        if not holdout:
            self._record(live, chosen, request_id, unit, found, now, latency_ms,
                         ok=ok, client_error=client_error, fallback=fallback,
                         error=error)  # fmt: skip
            if ok and not client_error and found:
                self._sample_drift(live, chosen, call, payload, found[0], now)
        features = first_row(call.protocol, payload) if hot.access.payloads else None
        client = hot.access.client(peer, headers)
        if response is None:
            kind = "timeout" if error == "timeout" else None
            what = "did not answer in time" if kind else f"is unavailable ({error})"
            answer = error_answer(
                UpstreamUnavailable(f"variant {served_by.name} {what}"),
                request_id, 504 if kind else None,
            )  # fmt: skip
            hot.access.request(
                trace, request_id, experiment=live.name, variant=served_by.name,
                assigned=chosen.name, model_version=served_by.model_version, endpoint=pool.url,
                status=answer.status, latency_ms=latency_ms, fallback=fallback, error=error,
                shadows=None, features=features, client=client,
            )  # fmt: skip
            return answer

        def log(shadows: dict[str, str] | None) -> None:
            if trace.sampled or error is not None:
                hot.access.request(
                    trace, request_id, experiment=live.name, variant=served_by.name,
                    assigned=chosen.name, model_version=served_by.model_version,
                    endpoint=pool.url, status=response.status, latency_ms=latency_ms,
                    fallback=fallback, error=error, shadows=shadows, features=features,
                    client=client,
                )  # fmt: skip

        if live.shadows and not client_error and not holdout and found:
            # Mirrored once the live answer is written, as on /predict (``HotPath``); the
            # access record, naming what became of each shadow, with it.
            def mirror() -> None:
                log(self._mirror(live, call, unit, body, content_type, forward, found, trace,
                                 request_id, now))  # fmt: skip

            asyncio.get_running_loop().call_soon(mirror)
        else:
            log(None)
        answer = self._answer(response, served_by, request_id)
        if rows > 1:
            answer.headers.append((b"x-outcome-rows", b"%d" % min(rows, MAX_JOINABLE_ROWS)))
        return answer

    def _record(
        self,
        live: LiveExperiment,
        chosen: Target,
        request_id: str,
        unit: str,
        found: list[Any] | None,
        now: float,
        latency_ms: float,
        *,
        ok: bool,
        client_error: bool,
        fallback: bool,
        error: str | None,
    ) -> None:
        # The call is one request (its latency, error and assignment); a call of several
        # rows maps its own id to none of them (unscored) and each row to its prediction.
        recorder = self.hot.recorder
        unit_recorded = recorded_unit(live, unit, request_id)
        several = found is not None and len(found) > 1
        prediction = Unanswered.OTHER if several else (found[0] if found else None)
        recorder.record_request(
            live.name, chosen.name, chosen.model_version, live.version,
            ok=ok and not client_error, client_error=client_error, latency_ms=latency_ms,
            fallback=fallback, request_id=request_id, prediction=prediction, error=error,
            ts=now, unit=unit_recorded,
        )  # fmt: skip
        if several:
            assert found is not None
            ids = outcome_ids(request_id, len(found))
            # Rows the assigned variant did not answer (a fallback) are mapped unscored,
            # so their feedback is answered at once, as a request's is.
            scored = ok and not client_error and not fallback
            rows = found if scored else [Unanswered.OTHER] * len(ids)
            recorder.record_rows(
                live.name, chosen.name, chosen.model_version, live.version,
                list(zip(ids, rows, strict=False)), ts=now, unit=unit_recorded,
            )  # fmt: skip

    def _sample_drift(
        self,
        live: LiveExperiment,
        chosen: Target,
        call: ProtocolCall,
        payload: Any,
        prediction: Any,
        now: float,
    ) -> None:
        hot = self.hot
        if live.drift is None or not hot.drift.due():
            return
        bins = live.drift.get(chosen.name)
        features = first_row(call.protocol, payload)
        if bins is not None and features is not None:
            fields = bins.fields_for(features, {"prediction": prediction})
            hot.recorder.record_drift(live.name, fields, now)

    # --- shadows ------------------------------------------------------------------

    def _mirror(
        self,
        live: LiveExperiment,
        call: ProtocolCall,
        unit: str,
        body: bytes,
        content_type: bytes,
        forward: bytes,
        live_predictions: list[Any],
        trace: Trace,
        request_id: str,
        request_ts: float,
    ) -> dict[str, str]:
        mirroring = self.hot.mirroring
        outcomes: dict[str, str] = {}
        for name in live.assigner.shadows_for(unit):
            # Shed at the shadow's own max_inflight, counted, as on the native path.
            shadow = mirroring.claim(live, name, outcomes)
            if shadow is not None:
                pool = shadow.endpoints.pick()
                done = _ProtocolAnswer(
                    call, live_predictions, mirroring, live.name, shadow.name, pool.url, trace,
                    request_id, request_ts,
                )  # fmt: skip
                path = pool.base_path + shadow.paths["predict"]
                mirroring.caller.call(
                    ShadowCall(pool, path, body, forward, shadow.timeout_s, b"POST", content_type),
                    done,
                )
        return outcomes


class _ProtocolAnswer(ShadowAnswer):
    """A model server's shadow answer: each row's prediction against the live one's."""

    __slots__ = ("call", "live_predictions")

    def __init__(self, call: ProtocolCall, live_predictions: list[Any], *args: Any) -> None:
        super().__init__(*args)
        self.call = call
        self.live_predictions = live_predictions

    def score(
        self, answer: UpstreamResponse | None, error: str | None
    ) -> tuple[bool | None, str | None]:
        """Compare the rows and keep each row's answer for that row's feedback."""
        found = None if answer is None else predictions(self.call.protocol, _parsed(answer.body))
        recorder = self.mirroring.recorder
        experiment, shadow, live_predictions = self.experiment, self.shadow, self.live_predictions
        if found is None:
            recorder.record_shadow(experiment, shadow, ok=False, agreed=None)
            return None, error or "protocol"
        if len(live_predictions) == 1:
            agreed = found == live_predictions
            # Kept beside the mapping: the request's feedback scores it (paired counts).
            recorder.record_shadow(
                experiment, shadow, ok=True, agreed=agreed, request_id=self.request_id,
                prediction=found[0], request_ts=self.request_ts,
            )  # fmt: skip
            return agreed, None
        # Each row compared: a shadow answering other rows disagrees on them.
        alike = sum(a == b for a, b in zip(found, live_predictions, strict=False))
        recorder.record_shadow_rows(
            experiment, shadow, compared=len(live_predictions), agreed=alike
        )
        # Each row's answer beside that row's mapping, scored by the row's feedback.
        ids = outcome_ids(self.request_id, len(live_predictions))
        for row_id, row_answer in zip(ids, found, strict=False):
            recorder.keep_shadow_answer(experiment, shadow, row_id, row_answer, self.request_ts)
        return alike == len(live_predictions) == len(found), None
