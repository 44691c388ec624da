"""The request pipeline (assign → forward with fallback → record → respond), in-process.

The hot path is built by ``create_hot_path`` with its edges injected: each
endpoint URL of the config gets an in-memory upstream that answers from a
script, and feedback goes to an in-memory store. No process, socket or Redis.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import orjson
import pytest

from core.errors import RedisUnavailable
from core.settings import Settings
from core.store import FeedbackItem, FeedbackResult
from experiments.loader import load_experiment
from gateway.hotpath import HotPath, create_hot_path
from gateway.recorder import Recorder
from gateway.upstream import UpstreamError, UpstreamResponse
from tests.conftest import write_config

CHAMPION, CHALLENGER, SHADOW = "http://127.0.0.1:1", "http://127.0.0.1:2", "http://127.0.0.1:3"
BODY = orjson.dumps({"features": [1.0, 2.0]})

Reply = UpstreamResponse | UpstreamError


def ok(prediction: Any = 1) -> UpstreamResponse:
    return UpstreamResponse(200, orjson.dumps({"prediction": prediction}))


class ScriptedUpstream:
    """One endpoint: each call takes the next scripted reply (then repeats the last)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.base_path = b""
        self.healthy = True
        self.replies: list[Reply] = [ok()]
        self.calls: list[tuple[bytes, bytes, bytes]] = []

    async def request(
        self,
        path: bytes,
        body: bytes,
        headers: bytes,
        timeout_s: float,
        method: bytes = b"POST",
        content_type: bytes = b"application/json",
    ) -> UpstreamResponse:
        self.calls.append((path, body, headers))
        reply = self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        if isinstance(reply, UpstreamError):
            raise reply
        return reply

    def note(self, ok: bool) -> None:
        self.healthy = self.healthy and ok

    def close(self) -> None:
        pass


class InMemoryStore:
    """The feedback store: answers each call from a script, and keeps what it was sent."""

    def __init__(self, *replies: FeedbackResult | RedisUnavailable) -> None:
        self.replies = list(replies)
        self.items: list[tuple[str, FeedbackItem, bool]] = []

    async def feedback(self, name: str, item: FeedbackItem, *, park: bool) -> FeedbackResult:
        self.items.append((name, item, park))
        reply = self.replies.pop(0)
        if isinstance(reply, RedisUnavailable):
            raise reply
        return reply


class RecordSpy(Recorder):
    """The real recorder, keeping the arguments of each ``record_request``."""

    def __init__(self) -> None:
        super().__init__(None)
        self.recorded: list[dict[str, Any]] = []
        self.drift_samples: list[list[str]] = []

    def record_request(self, experiment: str, variant: str, *args: Any, **kw: Any) -> None:
        self.recorded.append({"experiment": experiment, "variant": variant, **kw})
        super().record_request(experiment, variant, *args, **kw)

    def record_drift(self, experiment: str, fields: list[str], ts: float) -> None:
        self.drift_samples.append(fields)
        super().record_drift(experiment, fields, ts)


class Pipeline:
    """A hot path on doubles: ``upstreams`` by URL, the recorder spy and the store."""

    def __init__(self, tmp_path: Path, weights: dict[str, float], tail: str = "",
                 store: InMemoryStore | None = None, settings: Settings | None = None,
                 references: dict[str, Any] | None = None) -> None:  # fmt: skip
        self.upstreams: dict[str, ScriptedUpstream] = {}
        self.recorder = RecordSpy()
        self.store = store

        def connect(url: str) -> ScriptedUpstream:
            self.upstreams[url] = ScriptedUpstream(url)
            return self.upstreams[url]

        self.hot: HotPath = create_hot_path(
            settings or Settings(), store=store, upstream=connect, recorder=self.recorder
        )
        if references:
            self.hot.experiments.drift_references["demo"] = references
        extra = {"tail": tail} if tail else {}
        ports = {"champion": 1, "challenger": 2}
        path = write_config(tmp_path / "demo.yaml", ports, weights, **extra)
        self.hot.experiments.install(load_experiment(path), 1)

    def predict(
        self, body: bytes = BODY, **headers: str
    ) -> tuple[int, dict[str, Any], dict[bytes, bytes]]:
        raw = {k.replace("_", "-").lower().encode(): v.encode() for k, v in headers.items()}
        answer = run(self.hot.predict(body, raw, None))
        return answer.status, orjson.loads(answer.body), dict(answer.headers)


def run(call: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(call)


def to_challenger(tmp_path: Path, tail: str = "", store: InMemoryStore | None = None) -> Pipeline:
    return Pipeline(tmp_path, {"champion": 0, "challenger": 100}, tail, store)


def test_the_assigned_variant_answers_and_is_recorded_once(tmp_path: Path) -> None:
    pipe = to_challenger(tmp_path)
    pipe.upstreams[CHALLENGER].replies = [ok("cat")]

    status, body, headers = pipe.predict(x_user_id="u-1")

    assert status == 200
    assert body["prediction"] == "cat" and body["variant"] == "challenger"
    assert headers[b"x-variant"] == b"challenger"
    assert pipe.upstreams[CHAMPION].calls == []
    (path, sent, forwarded_headers), = pipe.upstreams[CHALLENGER].calls  # fmt: skip
    assert (path, sent) == (b"/predict", BODY)
    assert b"X-Request-ID: " + body["request_id"].encode() in forwarded_headers
    (record,) = pipe.recorder.recorded
    assert record["variant"] == "challenger" and record["unit"] == "u-1"
    assert record["ok"] and not record["fallback"] and record["error"] is None
    assert record["prediction"] == "cat" and record["request_id"] == body["request_id"]


@pytest.mark.parametrize("failure", ["connect_error", "timeout"])
def test_a_failed_variant_falls_back_to_the_champion(tmp_path: Path, failure: str) -> None:
    pipe = to_challenger(tmp_path)
    pipe.upstreams[CHALLENGER].replies = [UpstreamError(failure, "down")]
    pipe.upstreams[CHAMPION].replies = [ok("dog")]

    status, body, headers = pipe.predict(x_user_id="u-1")

    assert status == 200
    assert body["prediction"] == "dog" and headers[b"x-variant"] == b"champion"
    assert len(pipe.upstreams[CHALLENGER].calls) == 1
    assert len(pipe.upstreams[CHAMPION].calls) == 1
    (record,) = pipe.recorder.recorded  # the outcome stays the assigned variant's
    assert record["variant"] == "challenger" and record["fallback"]
    assert not record["ok"] and record["error"] == failure


def test_a_5xx_falls_back_and_a_failure_not_listed_does_not(tmp_path: Path) -> None:
    pipe = to_challenger(tmp_path, tail="fallback: {on: [timeout]}")
    pipe.upstreams[CHALLENGER].replies = [UpstreamResponse(503, b"{}")]

    status, body, _ = pipe.predict(x_user_id="u-1")

    assert status == 503, body
    assert "challenger is unavailable (5xx)" in body["error"]
    assert pipe.upstreams[CHAMPION].calls == []
    (record,) = pipe.recorder.recorded
    assert record["error"] == "5xx" and not record["fallback"]


def test_a_timeout_without_fallback_is_a_504(tmp_path: Path) -> None:
    pipe = to_challenger(tmp_path, tail="fallback: {enabled: false}")
    pipe.upstreams[CHALLENGER].replies = [UpstreamError("timeout", "slow")]

    status, body, headers = pipe.predict(x_user_id="u-1")

    assert status == 504
    assert body["error"] == "variant challenger did not answer in time"
    assert headers[b"x-request-id"]
    assert [r["error"] for r in pipe.recorder.recorded] == ["timeout"]


def test_an_answer_that_is_not_a_json_object_is_a_protocol_failure(tmp_path: Path) -> None:
    pipe = to_challenger(tmp_path, tail="fallback: {enabled: false}")
    pipe.upstreams[CHALLENGER].replies = [UpstreamResponse(200, b"[1, 2]")]

    status, body, _ = pipe.predict(x_user_id="u-1")

    assert status == 503 and "(protocol)" in body["error"]
    (record,) = pipe.recorder.recorded
    assert record["error"] == "protocol" and not record["ok"]


def test_a_4xx_is_the_clients_error_passed_on_without_fallback(tmp_path: Path) -> None:
    pipe = to_challenger(tmp_path)
    refusal = orjson.dumps({"status": "error", "error": "wrong number of features"})
    pipe.upstreams[CHALLENGER].replies = [UpstreamResponse(422, refusal)]

    status, body, headers = pipe.predict(x_user_id="u-1")

    assert status == 422 and body["error"] == "wrong number of features"
    assert headers[b"x-variant"] == b"challenger"
    assert pipe.upstreams[CHAMPION].calls == []
    (record,) = pipe.recorder.recorded
    assert record["client_error"] and not record["ok"] and record["error"] is None


def test_record_is_called_once_per_request_and_never_for_a_bad_one(tmp_path: Path) -> None:
    pipe = to_challenger(tmp_path)
    pipe.upstreams[CHALLENGER].replies = [ok(), UpstreamError("connect_error", "down"), ok()]
    pipe.upstreams[CHAMPION].replies = [UpstreamError("connect_error", "down too")]

    statuses = [pipe.predict(x_user_id=f"u-{i}")[0] for i in range(3)]
    bad = pipe.predict(b'{"features": []}', x_user_id="u-4")[0]

    assert statuses == [200, 503, 200] and bad == 400
    ids = [r["request_id"] for r in pipe.recorder.recorded]
    assert len(ids) == len(set(ids)) == 3
    assert [(r["ok"], r["fallback"]) for r in pipe.recorder.recorded] == [
        (True, False), (False, True), (True, False),
    ]  # fmt: skip


def test_a_unit_outside_every_namespace_is_served_by_the_champion_unrecorded(
    tmp_path: Path,
) -> None:
    # Half the model's units are in the experiment's namespace range; the others are holdouts.
    pipe = to_challenger(tmp_path, tail="namespace: [ns, 0, 0.5]")
    route = pipe.hot.experiments.for_model(None)
    unit = next(f"u-{i}" for i in range(1000) if route.pick(f"u-{i}") is None)

    status, body, _ = pipe.predict(x_user_id=unit)

    assert status == 200
    assert body["variant"] == "champion"
    assert pipe.upstreams[CHALLENGER].calls == []
    assert pipe.recorder.recorded == []


def test_a_shadow_gets_a_copy_in_the_background_and_frees_its_slot(tmp_path: Path) -> None:
    tail = f"shadows:\n  - {{name: shadow, model_version: v3, endpoints: ['{SHADOW}']}}"
    pipe = to_challenger(tmp_path, tail=tail)
    pipe.upstreams[SHADOW].replies = [ok("other")]
    hot = pipe.hot

    async def predict_then_settle() -> tuple[int, int, int, int]:
        answer = await hot.predict(BODY, {b"x-user-id": b"u-1"}, None)
        # Nothing mirrored yet: the copy starts after the turn of the loop in which the
        # server writes the live answer, so it is no part of the live latency.
        at_return = hot.mirroring.inflight, len(pipe.upstreams[SHADOW].calls)
        await asyncio.sleep(0)
        claimed = hot.mirroring.inflight + len(pipe.upstreams[SHADOW].calls)
        for _ in range(100):  # the copy's task runs on the next turns of the loop
            if not hot.mirroring.inflight:
                break
            await asyncio.sleep(0)
        return answer.status, *at_return, claimed

    status, inflight_at_return, calls_at_return, claimed = run(predict_then_settle())

    assert status == 200 and (inflight_at_return, calls_at_return) == (0, 0)
    assert claimed >= 1
    assert hot.mirroring.inflight == 0
    ((path, sent, _),) = pipe.upstreams[SHADOW].calls
    assert (path, sent) == (b"/predict", BODY)
    assert len(pipe.recorder.recorded) == 1  # the copy is no outcome of the request


def test_drift_is_sampled_from_the_assigned_variants_own_answers_only(tmp_path: Path) -> None:
    # Every answered request is sampled (rate 1); a fallback or a 4xx is no answer of it.
    reference = {
        "features": [{"edges": [0.0]}, {"edges": [0.0]}],
        "predictions": {"classes": [0, 1]},
    }
    pipe = Pipeline(
        tmp_path, {"champion": 0, "challenger": 100}, settings=Settings(drift_sample_rate=1.0),
        references={"v1": reference, "v2": reference},
    )  # fmt: skip
    pipe.upstreams[CHALLENGER].replies = [
        UpstreamError("connect_error", "down"),
        UpstreamResponse(400, orjson.dumps({"error": "no"})),
        ok(1),
    ]

    statuses = [pipe.predict(x_user_id=f"u-{i}")[0] for i in range(3)]

    assert statuses == [200, 400, 200]
    assert len(pipe.recorder.drift_samples) == 1
    (fields,) = pipe.recorder.drift_samples
    assert len(fields) == 3  # two features' bins and the predicted class


def test_feedback_goes_to_the_injected_store(tmp_path: Path) -> None:
    store = InMemoryStore(FeedbackResult("pending"))
    pipe = to_challenger(tmp_path, store=store)
    body = orjson.dumps({"request_id": "r-1", "label": 1, "experiment": "demo"})

    answer = run(pipe.hot.feedback(body))

    assert answer.status == 202, answer.body
    assert orjson.loads(answer.body)["waiting"] == "waiting for its request"
    ((name, item, park),) = store.items
    assert (name, item.request_id, item.value, park) == ("demo", "r-1", 1.0, True)


def test_a_lost_store_reply_is_tried_once_more_then_the_feedback_is_kept(tmp_path: Path) -> None:
    lost = RedisUnavailable("connection reset")
    store = InMemoryStore(lost, lost)
    pipe = to_challenger(tmp_path, store=store)
    body = orjson.dumps({"request_id": "r-1", "reward": 0.5, "experiment": "demo"})

    answer = run(pipe.hot.feedback(body))

    assert answer.status == 202 and orjson.loads(answer.body)["waiting"] == "waiting for Redis"
    assert len(store.items) == 2
    assert store.items[0][1].token == store.items[1][1].token  # the same item, sent again
    assert [item.request_id for item in pipe.recorder.feedback["demo"]] == ["r-1"]


def test_feedback_without_a_store_is_refused_with_a_message(tmp_path: Path) -> None:
    pipe = to_challenger(tmp_path)
    body = orjson.dumps({"request_id": "r-1", "label": 1})

    answer = run(pipe.hot.feedback(body))

    assert answer.status == 503
    assert "feedback needs Redis" in orjson.loads(answer.body)["error"]
