"""Commands on delayed feedback: count it against its request's mapping exactly once (or
park it until the mapping arrives), expire what waited too long, look a mapping up."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.schema import Keys
from core.store.command import Call, Command, ScriptCall, Steps, call, single
from core.store.lifetimes import Lifetimes
from core.store.scripts import EXPIRE_FEEDBACK, FEEDBACK

__all__ = [
    "FeedbackItem",
    "FeedbackJoins",
    "FeedbackResult",
    "claim_feedback",
    "expire_feedback",
    "feedback",
    "feedback_call",
    "feedback_result",
    "hour_of",
    "lookup_request",
]


@dataclass(frozen=True)
class FeedbackItem:
    """One feedback as received, ready for the feedback script.

    ``token`` is drawn once per received feedback and becomes the value of its
    request's claim: a retried write recognises its own claim (``again``)
    where another feedback's claim makes it a duplicate.
    """

    request_id: str
    token: str
    metric: str
    kind: str  # label, reward or value
    value: float
    served: str  # the mapping when the receiving process knows it, else ""
    ts: float
    window: int  # start of the stats window it is counted in
    # The experiment mirrors shadows: their answers kept beside the mapping are scored too.
    shadows: bool = False
    # With ``served``: the hour whose request hash the mapping goes to (its shadow
    # answers are looked up, and marked scored, there).
    hour: int | None = None


@dataclass(frozen=True)
class FeedbackResult:
    """What the feedback script did: ``counted`` (with the mapping and the amount),
    ``pending`` (parked until its mapping arrives), ``unscored`` (its request was not
    answered by its variant), ``duplicate`` (another feedback claimed the request),
    ``unknown`` (not parked), ``malformed``, or ``again`` (this very feedback was
    applied under a claim that kept no answer).

    A call retried with the same token gets the answer of its first run; the same
    feedback sent again under another token gets that answer with ``repeated``: in
    both cases nothing was counted this time.
    """

    status: str
    served: str = ""
    amount: float = 0.0
    repeated: bool = False


@dataclass(frozen=True)
class FeedbackJoins:
    """Parked feedback of one experiment, as Redis holds it (every replica's)."""

    expired_now: int  # expired by the sweep that read this
    pending: int
    parked: int  # all-time
    joined: int  # all-time
    expired: int  # all-time


def hour_of(ts: float) -> int:
    """The hour (unix seconds // 3600) whose request hash keeps a mapping made at ``ts``."""
    return int(ts // 3600)


def feedback_call(name: str, item: FeedbackItem, lifetimes: Lifetimes, *, park: bool) -> ScriptCall:
    """The feedback script's run for ``item`` (``lua/feedback.lua``), alone or in a flush."""
    keys = Keys(name)
    # Every hour a mapping may still be kept in, and the next one: a replica
    # whose clock runs ahead may have filed it there already.
    hours = range(hour_of(item.ts) + 1, hour_of(item.ts - lifetimes.request_ttl_s) - 1, -1)
    at = 0  # which of those hashes the mapping given goes to (1-based; 0: none given)
    if item.served and item.hour is not None and item.hour in hours:
        at = hours.index(item.hour) + 1
    return ScriptCall(
        FEEDBACK,
        [
            keys.feedback_claim(item.request_id),
            keys.pending_feedback,
            keys.pending_feedback_due,
            keys.feedback_joins,
            keys.window(item.window),
            keys.totals,
            keys.windows,
            *(keys.requests(hour) for hour in hours),
        ],
        [
            item.request_id,
            item.token,
            item.metric,
            item.kind,
            repr(float(item.value)),
            item.served,
            item.window,
            lifetimes.window_ttl_s,
            lifetimes.mapping_ttl_s,
            item.ts + lifetimes.request_ttl_s,
            1 if park else 0,
            keys.unit_prefix,
            lifetimes.unit_ttl_s,
            1 if item.shadows else 0,
            at,
        ],
    )


def feedback_result(answer: Any) -> FeedbackResult:
    """The feedback script's reply read."""
    parts = [part.decode() if isinstance(part, bytes) else str(part) for part in answer]
    return FeedbackResult(
        parts[0],
        parts[1] if len(parts) > 1 else "",
        float(parts[2]) if len(parts) > 2 else 0.0,
        repeated=len(parts) > 3 and parts[3] == "repeat",
    )


def feedback(
    name: str, item: FeedbackItem, lifetimes: Lifetimes, *, park: bool
) -> Command[FeedbackResult]:
    """Count, park or refuse one feedback; one round trip.

    When Redis does not answer, the script may have run or not, and the same item (same
    token) may be sent again.
    """
    return single(
        "feedback store unavailable",
        feedback_call(name, item, lifetimes, park=park),
        feedback_result,
    )


def expire_feedback(name: str, now: float, limit: int = 1000) -> Command[FeedbackJoins]:
    """Drop (and count) parked feedback of ``name`` whose wait ended before ``now``."""
    keys = Keys(name)
    return single(
        f"cannot expire the parked feedback of {name}",
        ScriptCall(
            EXPIRE_FEEDBACK,
            [keys.pending_feedback, keys.pending_feedback_due, keys.feedback_joins],
            [now, limit],
        ),
        lambda answer: FeedbackJoins(*(int(x) for x in answer)),
    )


def lookup_request(
    name: str, request_id: str, now: float, lifetimes: Lifetimes
) -> Command[str | None]:
    """The mapping a request was served with (``schema.decode_served``), if still kept."""
    return Command(
        f"cannot look up request {request_id} of {name}",
        _lookup_request(Keys(name), request_id, now, lifetimes),
    )


def _lookup_request(
    keys: Keys, request_id: str, now: float, lifetimes: Lifetimes
) -> Steps[str | None]:
    hours = range(hour_of(now), hour_of(now - lifetimes.request_ttl_s) - 1, -1)
    answers = yield [call("hget", keys.requests(hour), request_id) for hour in hours]
    for found in answers:
        if found is not None:
            return str(found.decode())
    return None


def claim_feedback(name: str, request_id: str, lifetimes: Lifetimes) -> Command[bool]:
    """True the first time feedback for ``request_id`` is claimed, False after."""
    # One key per request id, expiring with the request mapping: one atomic
    # command decides, whichever gateway replica gets the duplicate.
    claim: Call = call(
        "set", Keys(name).feedback_claim(request_id), 1, nx=True, ex=lifetimes.request_ttl_s
    )
    return single(f"cannot claim the feedback of {request_id} of {name}", claim, bool)
