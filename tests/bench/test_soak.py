"""The soak script end to end on a small run (the figures come from ``make soak``)."""

from __future__ import annotations

import pytest

from bench.soak import SoakResult, main, soak

pytestmark = pytest.mark.integration


def test_a_small_soak_records_every_outcome_and_passes() -> None:
    result = soak(total=300, concurrency=4, feedback_share=0.5)
    assert result.requests == result.ok == result.recorded_requests == 300
    assert 0 < result.feedback_ok == result.recorded_feedback == result.feedback_sent < 300
    assert result.dropped == 0 and result.exit_code == 0
    assert [n for n, _ in result.rss_kib][-1] == 300 and len(result.rss_kib) >= 10
    assert result.failures() == []


def test_failures_name_every_broken_criterion() -> None:
    broken = SoakResult(requests=10, ok=9, feedback_sent=5, feedback_ok=5, recorded_requests=8,
                        recorded_feedback=4, dropped=1, exit_code=1, feedback_expired=2,
                        rss_kib=[(1, 1000), (10, 1200)])  # fmt: skip
    broken.errors["predict 503"] = 1
    text = "\n".join(broken.failures())
    for fragment in ("client errors", "recorded 8 requests", "recorded 4 feedback",
                     "dropped outcomes: 1", "RSS grew +20.0%", "exit code 1",
                     "2 expired"):  # fmt: skip
        assert fragment in text


def test_bad_arguments_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--requests", "5"])
    assert exit_info.value.code == 2
    assert "--requests >= 10" in capsys.readouterr().err
