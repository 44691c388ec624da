"""What a chaos soak counted: the clients' answers, what Redis holds, the faults done."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

__all__ = ["ChaosResult"]


@dataclass
class ChaosResult:
    """What the clients were answered, what Redis holds, and what was done to the processes."""

    seconds: float = 0.0
    predicts_answered: int = 0  # any HTTP answer to /predict
    predicts_ok: int = 0
    predicts_lost_in_flight: int = 0  # sent, then the connection broke: outcome unknown
    failovers: int = 0  # refused at connect by one replica, sent to the other
    feedback_sent: int = 0
    feedback_accepted: int = 0  # 200 or 202, once per request id
    feedback_waited: int = 0  # of which 202
    feedback_resent: int = 0  # sent again after a lost answer
    feedback_repeated: int = 0  # answers marked "repeated"
    feedback_unscored: int = 0  # 409: the request was answered by a fallback
    # Accepted with 202 before its request was known, which then turned out to have been
    # answered by a fallback: never counted, by contract (Redis's joins hash, "unscored").
    feedback_parked_unscored: int = -1
    errors: Counter[str] = field(default_factory=Counter)
    events: Counter[str] = field(default_factory=Counter)
    exit_codes: list[int | None] = field(default_factory=list)  # gateways' SIGTERMs
    state_checks: list[str] = field(default_factory=list)  # what did not survive a restart
    recorded_requests: int = -1
    recorded_feedback: int = -1
    feedback_pending: int = -1
    feedback_expired: int = -1
    dropped: int = -1
    ramp_resumed: bool = False
    final_exit_codes: list[int | None] = field(default_factory=list)  # SIGTERM at the end
    # Accepted feedback by its first answer, and by the claim Redis holds for it at
    # the end (``missing``: never reached Redis): where any loss happened.
    feedback_answers: Counter[str] = field(default_factory=Counter)
    feedback_claims: Counter[str] = field(default_factory=Counter)
    lost_in_flight: Counter[str] = field(default_factory=Counter)

    @property
    def feedback_to_count(self) -> int:
        """Accepted feedback that must be counted: all but those of fallback answers."""
        return self.feedback_accepted - self.feedback_parked_unscored

    @property
    def lost(self) -> int:
        """Answered or accepted outcomes missing from Redis."""
        return max(0, self.predicts_answered - self.recorded_requests) + max(
            0, self.feedback_to_count - self.recorded_feedback
        )

    @property
    def duplicates(self) -> int:
        """Outcomes Redis holds beyond what the clients were answered."""
        return max(0, self.recorded_requests - self.predicts_answered) + max(
            0, self.recorded_feedback - self.feedback_to_count
        )

    def failures(self) -> list[str]:
        """Every check that does not hold, in words."""
        found = []
        if self.errors:
            found.append(f"client errors: {dict(self.errors)}")
        if self.predicts_lost_in_flight:
            found.append(f"{self.predicts_lost_in_flight} predict answers lost in flight")
        if self.recorded_requests != self.predicts_answered:
            found.append(
                f"recorded {self.recorded_requests} requests, answered {self.predicts_answered}"
            )
        if self.recorded_feedback != self.feedback_to_count:
            found.append(
                f"recorded {self.recorded_feedback} feedback, accepted {self.feedback_accepted} "
                f"of which {self.feedback_parked_unscored} for fallback answers"
            )
        if self.feedback_pending != 0 or self.feedback_expired != 0:
            found.append(
                f"feedback never joined: {self.feedback_pending} pending, "
                f"{self.feedback_expired} expired"
            )
        if self.dropped != 0:
            found.append(f"dropped outcomes: {self.dropped}")
        found += self.state_checks
        if not self.ramp_resumed:
            found.append("the ramp controller did not resume the ramp at its step")
        if any(code != 0 for code in [*self.exit_codes, *self.final_exit_codes]):
            found.append(
                f"gateway exit codes after SIGTERM: {self.exit_codes} {self.final_exit_codes}"
            )
        for event in ("worker_kills", "redis_restarts", "gateway_restarts", "applies"):
            if not self.events[event]:
                found.append(f"no {event.replace('_', ' ')} happened")
        return found
