"""The gateway process: its parts, their lifecycle and its ASGI entry point.

Under an ASGI server (``--server uvicorn``) ``Gateway`` is the app: a thin
adapter over the front door (``gateway/front_door.py``), which owns the route
table, the body limit and the error body; abgate's own server
(``gateway/server.py``) goes to the same front door without ASGI in between.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from core.http import BodySizeLimit
from core.settings import Settings
from core.store import AsyncStore
from experiments.config import ExperimentConfig
from gateway.config_sync import ConfigSync
from gateway.edges import UpstreamFactory
from gateway.front_door import FrontDoor
from gateway.hotpath import Answer, HotPath, create_hot_path
from gateway.live import LiveExperiments
from gateway.metrics import GatewayMetrics
from gateway.passthrough import Passthrough
from gateway.recorder import Recorder
from gateway.shadow_calls import shadow_calls
from gateway.tasks import stop_tasks
from gateway.upstream import EndpointPool

__all__ = ["Gateway", "app_from_environment", "build_gateway", "create_app"]

log = logging.getLogger("abgate.gateway")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

TASK_STOP_S = 2.0  # how long shutdown waits for the config watcher


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
    admin: InitVar[ASGIApp | None] = None  # answers what the front door's table does not hold
    door: FrontDoor = field(init=False)
    _asgi: ASGIApp = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def __post_init__(self, admin: ASGIApp | None) -> None:
        self.door = FrontDoor(
            self.hotpath,
            self.passthrough,
            self.metrics,
            self.ready,
            max_body_bytes=self.settings.max_body_bytes,
            admin=admin,
        )
        # Under an ASGI server this middleware applies the front door's limit to every path,
        # the admin app's too; abgate's own server applies it while it parses.
        self._asgi = BodySizeLimit(self._http, self.door.body_limit.max_bytes)

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
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        else:
            await self._asgi(scope, receive, send)

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
        """One request (or websocket) through the front door, under the body limit."""
        door = self.door
        route = (
            door.route(scope["method"].encode(), scope["path"]) if scope["type"] == "http" else None
        )
        if route is None:
            if door.admin is not None:
                await door.admin(scope, receive, send)
            return
        body = await _body(receive) if route.reads_body else b""
        if body is None:
            return  # the client left, or the body is over the limit (answered 413)
        client = scope.get("client")
        answer = await route.answer(body, scope["headers"], client[0] if client else None)
        headers = [
            (b"content-type", route.content_type),
            (b"content-length", str(len(answer.body)).encode()),
            *answer.headers,
        ]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

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


async def _body(receive: Receive) -> bytes | None:
    """The whole request body; None when the client is gone before its end."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def build_gateway(settings: Settings, bootstrap: ExperimentConfig | None = None) -> Gateway:
    """A gateway with its Redis store when ``settings`` name one: what each process serves."""
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


def app_from_environment() -> Gateway:
    """Factory for ``--server uvicorn --workers N``.

    uvicorn's worker processes import their app by name and take no objects, so
    each builds its settings from the environment (``ABGATE_*``; the config file
    from ``ABGATE_GATEWAY_CONFIG``). abgate's own server hands ``Settings`` to its
    forked processes instead (``gateway/prefork.py``).
    """
    from core.logs import configure_logging
    from experiments.loader import load_experiment

    settings = Settings()
    configure_logging(settings, "gateway")  # uvicorn's worker processes start unconfigured
    config = os.environ.get("ABGATE_GATEWAY_CONFIG")
    return build_gateway(settings, load_experiment(config) if config else None)


def create_app(
    settings: Settings,
    *,
    store: AsyncStore | None,
    bootstrap: ExperimentConfig | None = None,
    recorder: Recorder | None = None,
    upstream: UpstreamFactory = EndpointPool,
) -> Gateway:
    """Wire a gateway; ``store=None`` routes the bootstrap config without recording.

    ``upstream`` makes the connection pool of each endpoint URL (see ``gateway/edges.py``).
    """
    from gateway.admin import create_admin_app

    recorder = recorder or Recorder(
        store,
        window_s=settings.stats_window_s,
        flush_interval_s=settings.flush_interval_s,
        max_pending=settings.max_pending_outcomes,
    )
    if settings.test_drop_records:
        recorder.lose_records(settings.test_drop_records)
    hotpath = create_hot_path(settings, store=store, upstream=upstream, recorder=recorder)
    experiments = hotpath.experiments
    hotpath.mirroring.caller = shadow_calls(in_process=settings.shadow_calls == "inline")
    sync = ConfigSync(
        store,
        experiments,
        bootstrap,
        resync_every_s=settings.config_resync_s,
        shadows_installed=hotpath.mirroring.caller.prepare,
    )
    metrics = GatewayMetrics(
        experiments,
        recorder,
        hotpath,
        directory=Path(settings.metrics_dir) if settings.metrics_dir else None,
    )
    passthrough = Passthrough(hotpath)
    admin = create_admin_app(settings, store, experiments)
    return Gateway(
        settings, store, experiments, recorder, sync, hotpath, metrics, passthrough, admin
    )
