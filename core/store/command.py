"""A store command, written once for both clients: its Redis calls and how their replies
read, as steps that do no I/O.

A command's steps are a generator. Each ``yield`` hands over the calls of one round trip
(``Call`` and ``ScriptCall``) and receives their replies, in order; what it returns is the
command's result. ``Store`` runs the steps blocking, ``AsyncStore`` awaiting, and both
send a round the same way: one call as that call (a script through redis-py's
``Script``: EVALSHA, loaded again on NOSCRIPT), several as one pipeline without a
transaction, its scripts as EVAL. EVAL, not EVALSHA, in a pipeline: a pipeline cannot
recover from NOSCRIPT (say, on a cluster node that never saw the script) without
replaying the whole batch and counting it twice; the server caches the compiled script.

For example, a read of every window of an experiment, two round trips::

    def steps(keys):
        (starts,) = yield [call("zrange", keys.windows, 0, -1)]
        hashes = yield [call("hgetall", keys.window(int(s))) for s in starts]
        return hashes
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

import redis

from core.errors import RedisUnavailable
from core.store.scripts import Lua

__all__ = [
    "Call",
    "Command",
    "Round",
    "ScriptCall",
    "Steps",
    "call",
    "queue",
    "single",
    "unavailable_as",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Call:
    """One Redis command as the client method of that name takes it (``hgetall``, ...)."""

    method: str
    args: tuple[Any, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)  # the keyword arguments


def call(method: str, *args: Any, **options: Any) -> Call:
    """``Call(method, args, options)`` written as the call itself: ``call("get", key)``."""
    return Call(method, args, options)


@dataclass(frozen=True)
class ScriptCall:
    """One run of a store script with its KEYS and ARGV."""

    script: Lua
    keys: Sequence[str]
    args: Sequence[Any]


Round: TypeAlias = list[Call | ScriptCall]
"""The calls of one round trip."""

Steps: TypeAlias = Generator[Round, list[Any], T]
"""Yields each round's calls, receives their replies, returns the result."""


@dataclass
class Command(Generic[T]):
    """A store command: its steps, and what ``RedisUnavailable`` says when Redis fails."""

    failure: str  # "cannot read the ramp state of demo"
    steps: Steps[T]


def single(failure: str, one: Call | ScriptCall, read: Callable[[Any], T]) -> Command[T]:
    """A command of one call, whose reply ``read`` turns into the result."""
    return Command(failure, _single(one, read))


def _single(one: Call | ScriptCall, read: Callable[[Any], T]) -> Steps[T]:
    (reply,) = yield [one]
    return read(reply)


def queue(pipe: Any, one: Call | ScriptCall) -> None:
    """Queue ``one`` on a pipeline, sync or async alike (queueing does no I/O)."""
    if isinstance(one, ScriptCall):
        pipe.eval(one.script.code, len(one.keys), *one.keys, *one.args)
    else:
        getattr(pipe, one.method)(*one.args, **one.options)


@contextlib.contextmanager
def unavailable_as(failure: str) -> Iterator[None]:
    """Raise ``RedisUnavailable("<failure>: <why>")`` for a Redis or socket failure inside.

    Callers (the CLI, the ramp, the gateway) then meet one error for "Redis is away",
    never a client library's own exception.
    """
    try:
        yield
    except (redis.RedisError, OSError) as exc:
        raise RedisUnavailable(f"{failure}: {exc}") from exc
