"""The request path: parse, assign, forward, answer, record.

Written as plain ASGI handlers, not FastAPI routes: a framework route costs
more CPU per request than everything abgate itself does here (measured; see
docs/performance.md). No Redis call is awaited on this path; outcomes go to
the recorder's in-process buffer.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass
from random import random
from typing import Any

import orjson

from core.errors import (
    AbgateError,
    BadRequest,
    Conflict,
    NotFound,
    RedisUnavailable,
    UpstreamUnavailable,
)
from core.http import error_json
from core.schema import decode_served, window_start
from core.store import FeedbackItem, FeedbackResult
from core.tracing import Trace, continue_trace
from gateway.access_log import AccessLog
from gateway.drift_sampling import sample_every
from gateway.live import LiveExperiment, LiveExperiments, Target
from gateway.mirroring import Mirroring
from gateway.recorder import Recorder
from gateway.upstream import EndpointPool, UpstreamError, UpstreamResponse

__all__ = ["Answer", "HotPath", "new_request_id", "valid_outcome_id", "valid_request_id"]

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}")
# What feedback names: a request id, or row i of a call of several rows, "<id>.<i>"
# (gateway/protocols.py), so a request id of 128 characters keeps room for the row.
_OUTCOME_ID = re.compile(r"[A-Za-z0-9._:\-]{1,128}(\.[0-9]{1,9})?")
_PREDICT_PATH = b"/predict"

log = logging.getLogger("abgate.gateway")


class _RequestIds:
    """Random 96-bit request ids, drawn from the OS a few hundred at a time.

    They must be unguessable (feedback is joined on them) and unique across
    processes, so they come from ``os.urandom``, but one ``getrandom`` system
    call per request is a measurable share of the hot path. The buffer is
    dropped in a forked child, which must never reuse its parent's bytes.
    """

    _CHUNK = 12 * 340

    def __init__(self) -> None:
        self._bytes = b""
        self._at = 0

    def reset(self) -> None:
        self._bytes, self._at = b"", 0

    def new(self) -> str:
        at = self._at
        if at + 12 > len(self._bytes):
            self._bytes, at = os.urandom(self._CHUNK), 0
        self._at = at + 12
        return self._bytes[at : at + 12].hex()


_request_ids = _RequestIds()
os.register_at_fork(after_in_child=_request_ids.reset)


def valid_request_id(value: str) -> bool:
    """Request ids are echoed in headers and logs: only safe characters pass."""
    return _REQUEST_ID.fullmatch(value) is not None


def valid_outcome_id(value: str) -> bool:
    """A request id, or one with a row suffix ``.<i>``: what feedback may name."""
    return _OUTCOME_ID.fullmatch(value) is not None


def new_request_id() -> str:
    """A fresh random request id (for paths other than this module's ``predict``)."""
    return _request_ids.new()


@dataclass(slots=True)
class Answer:
    """What the ASGI layer sends back."""

    status: int
    body: bytes
    headers: list[tuple[bytes, bytes]]


def _error(exc: AbgateError, request_id: str | None = None) -> Answer:
    headers = [(b"x-request-id", request_id.encode())] if request_id else []
    return Answer(exc.status_code, error_json(exc.message), headers)


def _features_ok(features: Any) -> bool:
    if type(features) is not list or not features:
        return False
    for value in features:
        kind = type(value)
        if kind is not float and kind is not int:
            return False
    return True


def _json_object(body: bytes, not_an_object: str) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from exc
    if type(payload) is not dict:
        raise BadRequest(not_an_object)
    return payload


def _accepted(
    request_id: str, experiment: str, metric: str, waiting: str, *, repeated: bool = False
) -> Answer:
    # 202: taken and kept; it counts once its request's mapping (or Redis) is there.
    body: dict[str, Any] = {
        "status": "accepted",
        "request_id": request_id,
        "experiment": experiment,
        "metric": metric,
        "waiting": waiting,
    }
    if repeated:
        body["repeated"] = True  # this very feedback was taken before; kept once
    return Answer(202, orjson.dumps(body), [])


class HotPath:
    """Predict and feedback for the live experiments (shadows: ``gateway/mirroring.py``)."""

    def __init__(
        self,
        experiments: LiveExperiments,
        recorder: Recorder,
        store: Any,
        access: AccessLog | None = None,
        *,
        drift_sample_rate: float = 0.0,
    ) -> None:
        self.experiments = experiments
        self.recorder = recorder
        self.store = store
        self.access = access or AccessLog(0.0)
        self.drift_every = sample_every(drift_sample_rate)
        self._drift_countdown = self.drift_every
        self.mirroring = Mirroring(recorder, self.access)

    # --- predict ------------------------------------------------------------------

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
                request_id = _request_ids.new()
            else:
                given = raw_id.decode("latin-1")
                if not valid_request_id(given):  # not echoed, not logged
                    raise BadRequest("X-Request-ID must be 1-128 characters of A-Z a-z 0-9 . _ : -")
                request_id = given
            route = self.experiments.for_model(model)
            payload = self._parse(body)
            unit = self._unit(route.first, payload, headers, request_id)
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
            return _error(exc, request_id)

    @staticmethod
    def _parse(body: bytes) -> dict[str, Any]:
        payload = _json_object(body, "body must be a JSON object with a 'features' list")
        features = payload.get("features")
        if features is None:
            raise BadRequest("features: field required")
        if not _features_ok(features):
            raise BadRequest("features: must be a non-empty list of finite numbers")
        return payload

    @staticmethod
    def _unit(live: LiveExperiment, payload: dict[str, Any], headers: dict[bytes, bytes],
              request_id: str) -> str:  # fmt: skip
        if live.unit_source == "header":
            value = headers.get(live.unit_name.encode())
            if not value:
                return request_id
            try:  # an app sends its user id as UTF-8: hash that id, as its GrowthBook SDK does
                return value.decode()
            except UnicodeDecodeError:  # not UTF-8: the bytes as they came
                return value.decode("latin-1")
        if live.unit_source == "json_field":
            value = payload.get(live.unit_name)
            return str(value) if type(value) in (str, int) else request_id
        return request_id

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
        if live.paused or holdout:
            chosen = live.champion
        else:
            forced = None
            if live.override_header is not None:
                raw = headers.get(live.override_header.encode())
                forced = raw.decode("latin-1") if raw else None
            chosen = live.targets[live.assigner.assign(unit, forced).name]
        forward_headers = b"X-Request-ID: %s\r\ntraceparent: %s\r\n" % (
            request_id.encode(),
            trace.header,
        )
        started = time.perf_counter()
        now = time.time()
        served_by = chosen
        fallback = False
        error: str | None = None
        pool = chosen.endpoints.pick()
        try:
            response = await self._call(pool, chosen, body, forward_headers)
        except UpstreamError as exc:
            error = exc.kind
            response = None
        if response is not None and response.status >= 500:
            error = "5xx"
            response = None
        latency_ms = (time.perf_counter() - started) * 1000.0
        if error == "protocol":
            error = "5xx"  # an answer that is not HTTP counts as a server failure
        if response is None and chosen is not live.champion and error in live.fallback_on:
            fallback = True
            served_by = live.champion
            pool = live.champion.endpoints.pick()
            try:
                response = await self._call(pool, live.champion, body, forward_headers)
                if response.status >= 500:
                    response = None
            except UpstreamError:
                response = None
        ok = error is None
        client_error = response is not None and 400 <= response.status < 500 and ok
        prediction: Any = None
        answer_body: dict[str, Any] | None = None
        if response is not None:
            try:
                answer_body = orjson.loads(response.body)
            except orjson.JSONDecodeError:
                answer_body = None
            if type(answer_body) is not dict:
                ok = False
                error = error or "protocol"
                answer_body = None
                response = None
            else:
                prediction = answer_body.get("prediction")
        if not holdout:
            # Per-unit statistics need the unit, unless it is the request; a request that
            # named none (``_unit`` fell back to its id) is a unit of its own: "".
            recorded_unit = (
                None if live.unit_source == "request_id" else "" if unit is request_id else unit
            )
            self.recorder.record_request(
                live.name, chosen.name, chosen.model_version, live.version,
                ok=ok and not client_error, client_error=client_error, latency_ms=latency_ms,
                fallback=fallback, request_id=request_id, prediction=prediction, error=error,
                ts=now,
                unit=recorded_unit,
            )  # fmt: skip
        if ok and not client_error and live.drift is not None and self.drift_every and not holdout:
            self._drift_countdown -= 1
            if self._drift_countdown <= 0:
                self._drift_countdown = self.drift_every
                bins = live.drift.get(chosen.name)
                if bins is not None and answer_body is not None:
                    fields = bins.fields_for(payload["features"], answer_body)
                    self.recorder.record_drift(live.name, fields, now)
        if response is None or answer_body is None:
            if error == "timeout":
                message = f"variant {served_by.name} did not answer in time"
            else:
                message = f"variant {served_by.name} is unavailable ({error})"
            exc = UpstreamUnavailable(message)
            answer = _error(exc, request_id)
            if error == "timeout":
                answer.status = 504
            self._access(trace, request_id, live, chosen, served_by, pool, answer.status,
                         latency_ms, fallback, error, None, payload,
                         self.access.client(peer, headers))  # fmt: skip
            return answer
        answer_body["variant"] = served_by.name
        answer_body["model_version"] = served_by.model_version
        answer_body["request_id"] = request_id
        shadows = None
        if live.shadows and not client_error and not holdout:
            shadows = self.mirroring.mirror(
                live, unit, body, forward_headers, prediction, trace, request_id, now
            )
        if trace.sampled or error is not None:
            self._access(trace, request_id, live, chosen, served_by, pool, response.status,
                         latency_ms, fallback, error, shadows, payload,
                         self.access.client(peer, headers))  # fmt: skip
        return Answer(
            response.status,
            orjson.dumps(answer_body),
            [
                (b"x-request-id", request_id.encode()),
                (b"x-variant", served_by.name.encode()),
                (b"x-model-version", served_by.model_version.encode()),
            ],
        )

    def _access(
        self,
        trace: Trace,
        request_id: str,
        live: LiveExperiment,
        chosen: Target,
        served_by: Target,
        pool: EndpointPool,
        status: int,
        latency_ms: float,
        fallback: bool,
        error: str | None,
        shadows: dict[str, str] | None,
        payload: dict[str, Any],
        client: str | None,
    ) -> None:
        self.access.request(
            trace, request_id, experiment=live.name, variant=served_by.name,
            assigned=chosen.name, model_version=served_by.model_version, endpoint=pool.url,
            status=status, latency_ms=latency_ms, fallback=fallback, error=error,
            shadows=shadows, features=payload.get("features"), client=client,
        )  # fmt: skip

    @staticmethod
    async def _call(
        pool: EndpointPool, target: Target, body: bytes, headers: bytes
    ) -> UpstreamResponse:
        return await pool.request(_PREDICT_PATH, body, headers, target.timeout_s)

    # --- feedback -----------------------------------------------------------------

    async def feedback(self, body: bytes) -> Answer:
        """Join a delayed outcome to the variant that served the request."""
        try:
            return await self._feedback(body)
        except AbgateError as exc:
            if exc.status_code >= 500:
                log.error("feedback not recorded: %s", exc.message)
            return _error(exc)

    async def _feedback(self, body: bytes) -> Answer:
        payload = _json_object(body, "body must be a JSON object")
        request_id = payload.get("request_id")
        if type(request_id) is not str or not valid_outcome_id(request_id):
            raise BadRequest(
                "request_id: required, 1-128 characters of A-Z a-z 0-9 . _ : - (and, for a "
                "row of a call of several rows, its suffix .<row>)"
            )
        given = [k for k in ("label", "reward", "value") if k in payload]
        if len(given) != 1:
            raise BadRequest("give exactly one of label, reward, value")
        kind = given[0]
        value = payload[kind]
        if type(value) not in (int, float):
            raise BadRequest(f"{kind}: must be a number")
        experiment = payload.get("experiment")
        if experiment is not None and experiment not in self.experiments.by_name:
            raise NotFound(f"experiment {experiment!r} is not routed here")
        names = [experiment] if experiment else sorted(self.experiments.by_name)
        if self.store is None:
            raise UpstreamUnavailable("feedback needs Redis, which this gateway has not")
        now = time.time()
        # A request this process served but has not flushed yet: its mapping goes
        # with the feedback, so it is counted now, wherever the mapping is.
        hour: int | None = None
        for name in names:
            pending = self.recorder.pending_request_hour(name, request_id)
            if pending is not None:
                served, hour = pending
                candidates = [(name, served)]
                break
        else:
            candidates = [(name, "") for name in names]
        # Park only where the request must belong: with several candidate
        # experiments, parked copies in the others would expire as false losses.
        park = len(candidates) == 1
        token = os.urandom(8).hex()
        window = window_start(now, self.recorder.window_s)
        for name, served in candidates:
            routed = self.experiments.by_name[name]
            metric = routed.feedback_metrics[kind]
            item = FeedbackItem(
                request_id, token, metric, kind, float(value), served, now, window,
                shadows=bool(routed.shadows), hour=hour if served else None,
            )  # fmt: skip
            try:
                result = await self._store_feedback(name, item, park)
            except RedisUnavailable as exc:
                if not park:
                    raise UpstreamUnavailable(
                        f"feedback store unavailable, retry later (or name the experiment "
                        f"to have it kept until Redis is back): {exc}"
                    ) from exc
                if not self.recorder.buffer_feedback(name, item):
                    raise UpstreamUnavailable(
                        "feedback store unavailable and the buffer is full, retry later"
                    ) from exc
                return _accepted(request_id, name, metric, "waiting for Redis")
            if result.status != "unknown":
                self.recorder.count_feedback(name, "repeat" if result.repeated else result.status)
                break
        else:
            raise NotFound(
                f"request_id {request_id!r} is unknown in {', '.join(names)} (never served, or "
                "expired); for a request answered moments ago, name its experiment and the "
                "feedback waits for it"
            )
        if result.status == "pending":
            return _accepted(
                request_id, name, metric, "waiting for its request", repeated=result.repeated
            )
        if result.status in ("duplicate", "again"):
            raise Conflict(
                f"another feedback for request_id {request_id!r} was already counted (or is "
                "waiting for its request): this one is not (the same feedback sent again is "
                "answered as it was the first time)"
            )
        if result.status == "unscored":
            raise Conflict(
                f"request_id {request_id!r} was not answered by its variant (a fallback to the "
                "champion, or an error), or answered several rows (each is joined as "
                "<request_id>.<row>): its feedback is not counted"
            )
        if result.status != "counted":
            raise UpstreamUnavailable(f"the stored mapping of {request_id!r} is unreadable")
        mapping = decode_served(result.served)
        return Answer(
            200,
            orjson.dumps(
                {
                    "status": "success",
                    "request_id": request_id,
                    "experiment": name,
                    "variant": mapping.variant,
                    "model_version": mapping.model_version,
                    "metric": metric,
                    "value": result.amount,
                    **({"repeated": True} if result.repeated else {}),
                }
            ),
            [],
        )

    async def _store_feedback(self, name: str, item: FeedbackItem, park: bool) -> FeedbackResult:
        # A lost reply (a reset connection, a timeout) leaves it unknown whether the
        # script ran; the script answers a second run of the same token with the
        # first run's answer, so trying once more at once is safe and usually ends it.
        try:
            try:
                return await self.store.feedback(name, item, park=park)
            except RedisUnavailable:
                return await self.store.feedback(name, item, park=park)
        except RedisUnavailable:
            raise
        except Exception as exc:
            # Anything else raised while talking to Redis (a client library failing
            # oddly as a connection dies under it) is handled as Redis being away:
            # the item keeps its token, so keeping it and sending it again counts it
            # at most once, where a 500 would leave the client unsure. Logged whole,
            # because it is not supposed to happen.
            log.exception("feedback store failed unexpectedly; the feedback is kept")
            raise RedisUnavailable(f"feedback store failed: {exc!r}") from exc
