"""``Store``: the synchronous client (CLI, analysis, the ramp controller).

Each method runs a command of ``experiments`` or ``recordings`` (the same
commands ``AsyncStore`` runs); only the ramp lock, redis-py's ``Lock``, is its own.
Every call raises ``RedisUnavailable`` when Redis or the connection fails, never the
client library's own error.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import redis
from redis.commands.core import Script
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from core.errors import NotFound, RedisModeMismatch, RedisUnavailable
from core.schema import Keys
from core.store import experiments, recordings
from core.store.command import Call, Command, Round, ScriptCall, queue, unavailable_as
from core.store.experiments import ConfigRecord
from core.store.scripts import SCRIPTS, Lua

__all__ = ["Store"]

T = TypeVar("T")
_P = ParamSpec("_P")


def _unavailable_as(what: str) -> Callable[[Callable[_P, T]], Callable[_P, T]]:
    """A sync store call whose Redis or socket failure raises RedisUnavailable("<what> ...")."""

    def wrap(method: Callable[_P, T]) -> Callable[_P, T]:
        @functools.wraps(method)
        def call(*args: _P.args, **kwargs: _P.kwargs) -> T:
            with unavailable_as(what):
                return method(*args, **kwargs)

        return call

    return wrap


class Store:
    """Synchronous access for the CLI, analysis and the ramp controller."""

    def __init__(self, url: str, *, cluster: bool = False, window_ttl_s: int = 30 * 86400) -> None:
        self.url = url
        self.cluster = cluster
        self.window_ttl_s = window_ttl_s
        options: dict[str, Any] = {"socket_timeout": 5, "socket_connect_timeout": 2}
        self.client: redis.Redis | redis.RedisCluster = (
            redis.RedisCluster.from_url(url, **options)
            if cluster
            else redis.Redis.from_url(url, **options)
        )
        self._scripts: dict[Lua, Script] = {
            lua: self.client.register_script(lua.code) for lua in SCRIPTS
        }

    # --- running commands ---------------------------------------------------------------

    def run(self, command: Command[T]) -> T:
        """Run a store command, one round trip per step; RedisUnavailable when Redis fails."""
        with unavailable_as(command.failure):
            try:
                calls = next(command.steps)
                while True:
                    calls = command.steps.send(self._round_trip(calls))
            except StopIteration as done:
                result: T = done.value
                return result

    def _round_trip(self, calls: Round) -> list[Any]:
        if len(calls) > 1:
            with self.client.pipeline(transaction=False) as pipe:
                for one in calls:
                    queue(pipe, one)
                return list(pipe.execute())
        return [self._alone(one) for one in calls]

    def _alone(self, one: Call | ScriptCall) -> Any:
        if isinstance(one, ScriptCall):
            return self._scripts[one.script](keys=one.keys, args=one.args)
        return getattr(self.client, one.method)(*one.args, **one.options)

    def ping(self) -> None:
        """Raise RedisUnavailable unless Redis answers in the mode it was configured for."""
        try:
            self.client.ping()
            # A cluster node answers a single-node client until a key lives on
            # another node: say so now, not with a MOVED error in the middle of a ramp.
            misconfigured = not self.cluster and self.client.info("cluster").get("cluster_enabled")
        except redis.RedisError as exc:
            raise RedisUnavailable(f"Redis at {self.url} does not answer: {exc}") from exc
        if misconfigured:
            raise RedisModeMismatch(
                f"Redis at {self.url} is a Redis Cluster node: set ABGATE_REDIS_CLUSTER=1"
            )

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    # --- config and audit ---------------------------------------------------------------

    def put_config(
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
        """Store a validated config as the next version, audit it, tell every gateway."""
        return self.run(
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

    def get_config(self, name: str) -> ConfigRecord:
        """The current config of an experiment; NotFound when none was stored."""
        record = self.run(experiments.get_config(name))
        if record is None:
            raise NotFound(f"no experiment named {name!r} (apply its config first)")
        return record

    def experiments(self) -> list[str]:
        """Names of every stored experiment."""
        return self.run(experiments.names())

    def audit(self, name: str, count: int = 100) -> list[dict[str, Any]]:
        """The audit log of an experiment, oldest first."""
        return self.run(experiments.audit(name, count))

    def add_audit(
        self, name: str, *, actor: str, action: str, reason: str = "", evidence: Any = None
    ) -> None:
        """An audit entry that is not a config change (a ramp decision that holds, say)."""
        self.run(
            experiments.add_audit(
                name, actor=actor, action=action, reason=reason, evidence=evidence
            )
        )

    # --- what was recorded --------------------------------------------------------------

    def totals(self, name: str) -> dict[bytes, bytes]:
        """The all-time stats hash of an experiment."""
        return self.run(recordings.totals(name))

    def recorded(self, name: str) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
        """The all-time stats hash and the epoch records, read together."""
        return self.run(recordings.totals_and_epochs(name))

    def epochs(self, name: str) -> dict[bytes, bytes]:
        """The epoch records of an experiment: config version -> routing and start (JSON)."""
        return self.run(recordings.epochs(name))

    def windows(self, name: str) -> dict[int, dict[bytes, bytes]]:
        """Every recorded window's stats hash, oldest first."""
        return self.run(recordings.windows(name))

    def windows_since(self, name: str, since: float) -> list[dict[bytes, bytes]]:
        """Stats hashes of the windows that started at ``since`` or later, oldest first."""
        return self.run(recordings.windows_since(name, since))

    def events(self, name: str, count: int = 100) -> list[dict[str, Any]]:
        """The most recent raw events (newest last)."""
        return self.run(recordings.events(name, count))

    def put_drift_reference(self, name: str, references: dict[str, Any]) -> None:
        """Store the training references (model version -> reference) drift is checked against."""
        self.run(recordings.put_drift_reference(name, references))

    def drift_reference(self, name: str) -> dict[str, Any]:
        """The stored drift references of an experiment (empty when none was stored)."""
        return self.run(recordings.drift_reference(name))

    # --- ramp controller state ----------------------------------------------------------

    def ramp_state(self, name: str) -> dict[str, Any] | None:
        """The stored ramp state of an experiment, if any."""
        return self.run(recordings.ramp_state(name))

    def save_ramp_state(self, name: str, state: dict[str, Any]) -> None:
        """Store the ramp state (it survives the controller)."""
        self.run(recordings.save_ramp_state(name, state))

    def clear_ramp_state(self, name: str) -> None:
        """Forget a finished ramp."""
        self.run(recordings.clear_ramp_state(name))

    def _ramp_lock(self, name: str, owner: str, ttl_s: float) -> Lock:
        # redis-py's Lock (token compared and the key changed in one script); the
        # owner string is its token, so any Store can refresh or release by owner.
        lock: Lock = self.client.lock(
            Keys(name).ramp_lock, timeout=ttl_s, blocking=False, thread_local=False
        )
        lock.local.token = owner.encode()
        return lock

    @_unavailable_as("cannot take the ramp lock")
    def acquire_ramp_lock(self, name: str, owner: str, ttl_s: float) -> str | None:
        """Take the ramp lock; None when taken, else the owner now holding it."""
        return owner if self._ramp_lock(name, owner, ttl_s).acquire(token=owner) else None

    @_unavailable_as("cannot read the ramp lock")
    def ramp_lock_owner(self, name: str) -> str | None:
        """Who holds the ramp lock, if anyone."""
        raw = self.client.get(Keys(name).ramp_lock)
        return None if raw is None else raw.decode() if isinstance(raw, bytes) else str(raw)

    @_unavailable_as("cannot refresh the ramp lock")
    def refresh_ramp_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend the lock to ``ttl_s`` from now if ``owner`` still holds it."""
        try:
            self._ramp_lock(name, owner, ttl_s).reacquire()
        except LockNotOwnedError:
            return False
        return True

    @_unavailable_as("cannot release the ramp lock")
    def release_ramp_lock(self, name: str, owner: str) -> None:
        """Release the lock if ``owner`` holds it."""
        with contextlib.suppress(LockNotOwnedError):
            self._ramp_lock(name, owner, 1.0).release()
