"""The gateway process: an ASGI front that keeps the hot path off the framework.

``/predict``, ``/v1/{model}/predict``, ``/feedback``, ``/health``, ``/ready``
and ``/metrics`` (GET or HEAD), and the model servers' own paths
(``gateway/protocols.py``), are answered by plain ASGI code; everything else
(``/admin``, ``/docs``, ``/redoc``, ``/openapi.json``) goes to the FastAPI admin app.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.settings import Settings
from core.store import AsyncStore
from experiments.config import ExperimentConfig
from gateway.access_log import AccessLog
from gateway.config_sync import ConfigSync
from gateway.forwarded import TrustedProxies
from gateway.hotpath import Answer, HotPath
from gateway.live import LiveExperiments
from gateway.metrics import GatewayMetrics
from gateway.passthrough import Passthrough
from gateway.protocols import protocol_call
from gateway.recorder import Recorder
from gateway.shadow_calls import shadow_calls
from gateway.tasks import stop_tasks

__all__ = ["Gateway", "app_from_environment", "create_app"]

log = logging.getLogger("abgate.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = (b"content-type", b"application/json")
_HEALTHY = orjson.dumps({"status": "healthy"})
_GET_OR_HEAD = ("GET", "HEAD")
TASK_STOP_S = 2.0  # how long shutdown waits for the config watcher


class _TooLarge(Exception):
    pass


@dataclass
class Gateway:
    """Process state of one gateway and its ASGI entry point."""

    settings: Settings
    store: AsyncStore | None
    experiments: LiveExperiments
    recorder: Recorder
    sync: ConfigSync
    hotpath: HotPath
    metrics: GatewayMetrics
    passthrough: Passthrough
    admin: Any = None
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    # --- lifecycle ------------------------------------------------------------

    async def startup(self) -> None:
        """Load configs, start the recorder and the config watcher."""
        await self.sync.start()
        self.recorder.start()
        if self.store is not None:
            loop = asyncio.get_running_loop()
            self._tasks.append(loop.create_task(self.sync.watch(), name="config-watch"))
        if self.metrics.directory is not None:
            publisher = asyncio.get_running_loop().create_task(
                self.metrics.publish_every(), name="metrics-publish"
            )
            self._tasks.append(publisher)

    async def shutdown(self) -> None:
        """Stop watching, flush pending outcomes, close connections."""
        await stop_tasks(self._tasks, TASK_STOP_S)
        await self.hotpath.mirroring.caller.close()
        await self.recorder.stop()
        self.metrics.publish()  # the last counts, kept after this process exits
        for pool in self.experiments.pools.values():
            pool.close()
        if self.store is not None:
            await self.store.close()

    # --- ASGI -----------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif self.admin is not None:
            await self.admin(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "POST" and (path == "/predict" or path == "/feedback" or (
            path.startswith("/v1/") and path.endswith("/predict")
        )):  # fmt: skip
            try:
                body = await self._body(scope, receive)
            except _TooLarge:
                limit = self.settings.max_body_bytes
                await _send(send, _fail(413, f"request body over the limit of {limit} bytes"))
                return
            if path == "/feedback":
                answer = await self.hotpath.feedback(body)
            else:
                model = None if path == "/predict" else path[4:-8]
                headers = dict(scope["headers"])
                client = scope.get("client")
                peer = client[0] if client else None
                answer = await self.hotpath.predict(body, headers, model or None, peer)
            await _send(send, answer)
        # HEAD as GET: the server (uvicorn, or abgate's own) sends the head without the body.
        elif path == "/health" and method in _GET_OR_HEAD:
            await _send(send, Answer(200, _HEALTHY, []))
        elif path == "/ready" and method in _GET_OR_HEAD:
            await _send(send, await self.ready())
        elif path == "/metrics" and method in _GET_OR_HEAD:
            await _send(
                send,
                Answer(200, self.metrics.render(), []),
                content_type=b"text/plain; version=0.0.4; charset=utf-8",
            )
        elif (call := protocol_call(method.encode(), path)) is not None:
            try:
                body = await self._body(scope, receive)
            except _TooLarge:
                limit = self.settings.max_body_bytes
                await _send(send, _fail(413, f"request body over the limit of {limit} bytes"))
                return
            client = scope.get("client")
            peer = client[0] if client else None
            headers = dict(scope["headers"])
            await _send(send, await self.passthrough.call(call, body, headers, peer))
        elif self.admin is not None:
            await self.admin(scope, receive, send)
        else:
            await _send(send, _fail(404, "Not Found"))

    async def _body(self, scope: Scope, receive: Receive) -> bytes:
        limit = self.settings.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                raise _TooLarge
        chunks = []
        size = 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def ready(self) -> Answer:
        """Readiness: something to route, a reachable champion; Redis state reported."""
        health = self.recorder.health()
        redis_ok = await self.store.ping() if self.store is not None else False
        experiments = {}
        ready = bool(self.experiments.by_name)
        for name, live in sorted(self.experiments.by_name.items()):
            champion_up = any(pool.healthy for pool in live.champion.endpoints.pools)
            ready = ready and champion_up
            experiments[name] = {
                "config_version": live.version,
                "paused": live.paused,
                "champion_reachable": champion_up,
                "config_in_redis": name not in self.sync.missing,
                "stored_config_rejected": name in self.sync.rejected,
                # False: no training reference in Redis (`abgate apply` stores it)
                "drift_checks": live.drift is not None and self.hotpath.drift_every > 0,
            }
        body = {
            "status": "ready" if ready else "not ready",
            # Recording figures are this process's: with --workers N, say which one.
            "pid": os.getpid(),
            "redis": "ok" if redis_ok else "unreachable",
            "recording": {
                "pending_outcomes": health.pending_events,
                "dropped_outcomes": health.dropped_events,
                "seconds_since_flush": round(health.seconds_since_flush, 3),
            },
            "feedback": {
                # Parked in Redis until their request's mapping arrives (every replica's).
                "pending": health.feedback_pending,
                # Expired unjoined after ABGATE_REQUEST_TTL_S, all-time (every replica's).
                "expired": health.feedback_expired,
                # This process's: kept while Redis was unreachable / refused, buffer full.
                "waiting_for_redis": health.feedback_buffered,
                "refused": health.feedback_refused,
            },
            "experiments": experiments,
        }
        return Answer(200 if ready else 503, orjson.dumps(body), [])


def _fail(status: int, message: str) -> Answer:
    return Answer(status, orjson.dumps({"status": "error", "error": message}), [])


async def _send(send: Send, answer: Answer, content_type: bytes = b"application/json") -> None:
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(answer.body)).encode()),
        *answer.headers,
    ]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


def app_from_environment() -> Gateway:
    """Factory for ``--workers N``: every process builds its gateway from the environment."""
    from core.logs import configure_logging
    from experiments.loader import load_experiment

    settings = Settings()
    configure_logging(settings, "gateway")  # uvicorn's worker processes start unconfigured
    config = os.environ.get("ABGATE_GATEWAY_CONFIG")
    bootstrap = load_experiment(config) if config else None
    store = (
        AsyncStore(
            settings.redis_url,
            cluster=settings.redis_cluster,
            request_ttl_s=settings.request_ttl_s,
            unit_ttl_s=settings.unit_ttl_s,
        )
        if settings.redis_url
        else None
    )
    return create_app(settings, store=store, bootstrap=bootstrap)


def create_app(
    settings: Settings,
    *,
    store: AsyncStore | None,
    bootstrap: ExperimentConfig | None = None,
    recorder: Recorder | None = None,
) -> Gateway:
    """Wire a gateway; ``store=None`` routes the bootstrap config without recording."""
    from gateway.admin import create_admin_app

    experiments = LiveExperiments()
    recorder = recorder or Recorder(
        store,
        window_s=settings.stats_window_s,
        flush_interval_s=settings.flush_interval_s,
        max_pending=settings.max_pending_outcomes,
    )
    if settings.test_drop_records:
        recorder.lose_records(settings.test_drop_records)
    recorder.experiment_names = lambda: experiments.by_name.keys()
    sync = ConfigSync(store, experiments, bootstrap)
    access = AccessLog(
        settings.access_log_rate,
        payloads=settings.log_payloads,
        proxies=TrustedProxies(settings.trusted_proxies),
    )
    hotpath = HotPath(
        experiments, recorder, store, access, drift_sample_rate=settings.drift_sample_rate
    )
    metrics = GatewayMetrics(
        experiments,
        recorder,
        hotpath,
        directory=Path(settings.metrics_dir) if settings.metrics_dir else None,
    )
    hotpath.mirroring.caller = shadow_calls(in_process=settings.shadow_calls == "inline")
    passthrough = Passthrough(hotpath)
    gateway = Gateway(settings, store, experiments, recorder, sync, hotpath, metrics, passthrough)
    gateway.admin = create_admin_app(settings, gateway)
    return gateway
