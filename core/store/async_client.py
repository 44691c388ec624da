"""``AsyncStore``: the gateway's client, used off the request path (the recorder's
flusher, the config listener, feedback, the admin API and dashboard).

Each method runs a command of ``experiments``, ``recordings``, ``flush`` or ``feedback``
(the same commands ``Store`` runs); only the config listener is its own. Its calls raise
``RedisUnavailable`` when Redis or the connection fails, except those the config
listener makes (``get_config``, ``experiments``, ``routing_extras``) and the two feedback
lookups, which raise the client's own error for their caller to retry on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from typing import Any, TypeVar

import redis
import redis.asyncio as aredis
from redis.commands.core import AsyncScript

from core.schema import CONFIG_CHANNEL
from core.store import experiments, feedback, flush, recordings
from core.store.command import Call, Command, Round, ScriptCall, queue, unavailable_as
from core.store.experiments import ConfigRecord
from core.store.feedback import FeedbackItem, FeedbackJoins, FeedbackResult
from core.store.flush import FlushBatch
from core.store.lifetimes import Lifetimes
from core.store.scripts import SCRIPTS, Lua

__all__ = ["AsyncStore"]

T = TypeVar("T")


class AsyncStore:
    """The gateway's access, used off the request path."""

    def __init__(
        self,
        url: str,
        *,
        window_ttl_s: int = 30 * 86400,
        events_maxlen: int = 10_000,
        request_ttl_s: int = 86400,
        unit_ttl_s: int = 30 * 86400,
        cluster: bool = False,
    ) -> None:
        self.url = url
        self.cluster = cluster
        self.lifetimes = Lifetimes(
            window_ttl_s=window_ttl_s,
            request_ttl_s=request_ttl_s,
            unit_ttl_s=unit_ttl_s,
            events_maxlen=events_maxlen,
        )
        self._options: dict[str, Any] = {
            "socket_timeout": 2,
            "socket_connect_timeout": 1,
            "health_check_interval": 5,
        }
        self.client: aredis.Redis | aredis.RedisCluster = (
            aredis.RedisCluster.from_url(url, **self._options)
            if cluster
            else aredis.Redis.from_url(url, **self._options)
        )
        self._scripts: dict[Lua, AsyncScript] = {
            lua: self.client.register_script(lua.code) for lua in SCRIPTS
        }
        self._listen_on = 0  # which cluster node the config listener tries next

    # --- running commands ---------------------------------------------------------------

    async def run(self, command: Command[T], *, convert: bool = True) -> T:
        """Run a store command, one round trip per step; RedisUnavailable when Redis fails
        (``convert``; else the client's own error)."""
        with unavailable_as(command.failure) if convert else contextlib.nullcontext():
            try:
                calls = next(command.steps)
                while True:
                    calls = command.steps.send(await self._round_trip(calls))
            except StopIteration as done:
                result: T = done.value
                return result

    async def _round_trip(self, calls: Round) -> list[Any]:
        if len(calls) > 1:
            async with self.client.pipeline(transaction=False) as pipe:
                for one in calls:
                    queue(pipe, one)
                return list(await pipe.execute())
        return [await self._alone(one) for one in calls]

    async def _alone(self, one: Call | ScriptCall) -> Any:
        if isinstance(one, ScriptCall):
            return await self._scripts[one.script](keys=one.keys, args=one.args)
        return await getattr(self.client, one.method)(*one.args, **one.options)

    async def close(self) -> None:
        """Close the connection pool."""
        await self.client.aclose()

    async def ping(self) -> bool:
        """Whether Redis answers now."""
        try:
            return bool(await self.client.ping())
        except (redis.RedisError, OSError):
            return False

    # --- what the gateway writes --------------------------------------------------------

    async def write(self, batches: list[FlushBatch]) -> list[FeedbackResult]:
        """Write one flush in a single round trip; raise RedisUnavailable on failure.

        Returns what became of each batch's feedback, in order.
        """
        return await self.run(flush.write(batches, self.lifetimes))

    async def feedback(self, name: str, item: FeedbackItem, *, park: bool) -> FeedbackResult:
        """Count, park or refuse one feedback (``lua/feedback.lua``); one round trip.

        Raises RedisUnavailable when Redis does not answer: the script may then
        have run or not, and the same item (same token) may be sent again.
        """
        return await self.run(feedback.feedback(name, item, self.lifetimes, park=park))

    async def expire_feedback(self, name: str, now: float, limit: int = 1000) -> FeedbackJoins:
        """Drop (and count) parked feedback of ``name`` whose wait ended before ``now``."""
        return await self.run(feedback.expire_feedback(name, now, limit))

    async def lookup_request(self, name: str, request_id: str, now: float) -> str | None:
        """The mapping a request was served with (``schema.decode_served``), if still kept."""
        command = feedback.lookup_request(name, request_id, now, self.lifetimes)
        return await self.run(command, convert=False)

    async def claim_feedback(self, name: str, request_id: str) -> bool:
        """True the first time feedback for ``request_id`` is claimed, False after."""
        command = feedback.claim_feedback(name, request_id, self.lifetimes)
        return await self.run(command, convert=False)

    # --- config -------------------------------------------------------------------------

    async def get_config(self, name: str) -> ConfigRecord | None:
        """The stored config of ``name``, or None."""
        return await self.run(experiments.get_config(name), convert=False)

    async def experiments(self) -> list[str]:
        """Names of every stored experiment."""
        return await self.run(experiments.names(), convert=False)

    async def routing_extras(self, name: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """What a gateway keeps next to a config: drift references and the ramp state."""
        return await self.run(experiments.routing_extras(name), convert=False)

    async def put_config(
        self,
        name: str,
        config: dict[str, Any],
        *,
        actor: str,
        action: str,
        reason: str = "",
        evidence: Any = None,
        paused: bool = False,
    ) -> int:
        """Store a validated config as the next version (the admin API), as ``Store``."""
        return await self.run(
            experiments.put_config(
                name,
                config,
                actor=actor,
                action=action,
                reason=reason,
                evidence=evidence,
                paused=paused,
            )
        )

    async def audit(self, name: str, count: int = 100) -> list[dict[str, Any]]:
        """The audit log of an experiment, oldest first."""
        return await self.run(experiments.audit(name, count))

    # --- what was recorded (admin API, dashboard) ---------------------------------------

    async def windows_since(self, name: str, since: float) -> list[dict[bytes, bytes]]:
        """Stats hashes of the windows that started at ``since`` or later, oldest first."""
        return await self.run(recordings.windows_since(name, since))

    async def drift_reference(self, name: str) -> dict[str, Any]:
        """The stored drift references of an experiment (empty when none was stored)."""
        return await self.run(recordings.drift_reference(name))

    async def recorded(
        self, name: str, last: int
    ) -> tuple[dict[bytes, bytes], dict[int, dict[bytes, bytes]], int | None, dict[bytes, bytes]]:
        """The totals hash, the ``last`` most recent window hashes (oldest first), the
        start of the first window ever kept and the epoch records (``recordings.recent``)."""
        return await self.run(recordings.recent(name, last))

    async def ramp_state(self, name: str) -> dict[str, Any] | None:
        """The stored ramp state of an experiment, if any (the dashboard)."""
        return await self.run(recordings.ramp_state(name))

    # --- config changes, as they are published ------------------------------------------

    async def config_updates(self) -> AsyncIterator[tuple[str, int]]:
        """Yield (experiment, version) for every config change published."""
        listener = await self._listener()
        pubsub = listener.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(CONFIG_CHANNEL)
            while True:
                message = await pubsub.get_message(timeout=1.0)
                if message is None:
                    yield ("", 0)  # heartbeat: lets the caller notice shutdown
                    continue
                name, _, version = message["data"].decode().partition(" ")
                yield (name, int(version or 0))
        finally:
            await pubsub.aclose()  # type: ignore[no-untyped-call]  # (untyped in redis-py)
            if listener is not self.client:
                await listener.aclose()

    async def _listener(self) -> aredis.Redis:
        """The connection to subscribe on: the client itself, or one cluster node.

        A plain connection to one node is enough in a cluster (PUBLISH reaches
        every node) and works with every redis-py version. Each call takes the
        next node, so a listener whose node failed comes back on another one.
        """
        if not isinstance(self.client, aredis.RedisCluster):
            return self.client
        await self.client.initialize()
        nodes = sorted(self.client.get_nodes(), key=lambda node: node.name)
        node = nodes[self._listen_on % len(nodes)]
        self._listen_on += 1
        return aredis.Redis(host=node.host, port=int(node.port), **self._options)

    @staticmethod
    def now() -> float:
        """Wall clock used for windows and request hours."""
        return time.time()
