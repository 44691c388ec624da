"""Feedback: a delayed outcome (label, reward, value) joined to the variant that served.

The request may have been served by this process (its mapping not flushed yet:
it goes with the feedback), by another process or replica (its mapping is in
Redis), or not yet be recorded anywhere (the feedback is parked until it is).
The join itself is one script in the store (``core/store.py``).
"""

from __future__ import annotations

import logging
import os
import time
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
from core.schema import decode_served, window_start
from core.store import FeedbackItem, FeedbackResult
from gateway.answer import Answer, error_answer
from gateway.bodies import json_object
from gateway.edges import FeedbackStore
from gateway.live import LiveExperiments
from gateway.recorder import Recorder
from gateway.request_ids import valid_outcome_id

__all__ = ["FeedbackIntake"]

log = logging.getLogger("abgate.gateway")


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


class FeedbackIntake:
    """``POST /feedback`` for one gateway process."""

    def __init__(
        self, experiments: LiveExperiments, recorder: Recorder, store: FeedbackStore | None
    ) -> None:
        self.experiments = experiments
        self.recorder = recorder
        self.store = store

    async def answer(self, body: bytes) -> Answer:
        """Join a delayed outcome to the variant that served the request (never raises)."""
        try:
            return await self._answer(body)
        except AbgateError as exc:
            if exc.status_code >= 500:
                log.error("feedback not recorded: %s", exc.message)
            return error_answer(exc)

    async def _answer(self, body: bytes) -> Answer:
        payload = json_object(body, "body must be a JSON object")
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
        store = self.store
        if store is None:
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
                result = await _store_feedback(store, name, item, park)
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


async def _store_feedback(
    store: FeedbackStore, name: str, item: FeedbackItem, park: bool
) -> FeedbackResult:
    # A lost reply (a reset connection, a timeout) leaves it unknown whether the
    # script ran; the script answers a second run of the same token with the
    # first run's answer, so trying once more at once is safe and usually ends it.
    try:
        try:
            return await store.feedback(name, item, park=park)
        except RedisUnavailable:
            return await store.feedback(name, item, park=park)
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
