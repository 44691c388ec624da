"""The chaos soak end to end on a short run (the figures come from ``make chaos``)."""

from __future__ import annotations

import pytest

from bench.chaos import ChaosResult, chaos, main


@pytest.mark.integration
@pytest.mark.slow
def test_a_short_chaos_run_loses_and_doubles_nothing() -> None:
    # One round: each of the four faults once, 5 s apart.
    result = chaos(duration=25, cycle=20, concurrency=8, feedback_share=0.5, out=lambda _: None)
    assert result.failures() == [], result
    assert result.lost == 0 and result.duplicates == 0
    assert result.predicts_answered == result.recorded_requests > 0
    assert 0 < result.recorded_feedback <= result.feedback_accepted
    for event in ("worker_kills", "applies", "redis_restarts", "gateway_restarts"):
        assert result.events[event] >= 1, result.events


def test_failures_name_every_broken_check() -> None:
    broken = ChaosResult(predicts_answered=10, recorded_requests=9, feedback_accepted=5,
                         feedback_parked_unscored=1, recorded_feedback=5, feedback_pending=1,
                         feedback_expired=0, dropped=2, exit_codes=[0, 1],
                         state_checks=["ramp differs after Redis restart"])  # fmt: skip
    broken.events.update(worker_kills=1, redis_restarts=1, gateway_restarts=1)
    assert (broken.lost, broken.duplicates) == (1, 1)
    text = "\n".join(broken.failures())
    for fragment in ("recorded 9 requests, answered 10", "recorded 5 feedback, accepted 5",
                     "1 pending", "dropped outcomes: 2", "ramp differs", "did not resume",
                     "exit codes", "no applies happened"):  # fmt: skip
        assert fragment in text, text


def test_bad_arguments_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--cycle", "5"])
    assert exit_info.value.code == 2
    assert "--cycle >= 20" in capsys.readouterr().err
