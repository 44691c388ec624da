"""The Redis encoding: stats fields per epoch, request mappings, epoch records (pure)."""

from __future__ import annotations

import pytest

from analysis.sufficient import MetricStats
from core.schema import (
    UNSCORED,
    Served,
    Unanswered,
    decode_epochs,
    decode_served,
    decode_stats,
    encode_served,
    epoch_record,
    parse_drift_fields,
    routed_weights,
)

CONFIG = {
    "variants": [
        {"name": "champion", "role": "champion", "model_version": "v1", "weight": 90},
        {"name": "canary", "role": "canary", "model_version": "v2", "weight": 10},
    ]
}


def test_fields_read_back_per_epoch_and_summed() -> None:
    fields = {
        b"3|champion:requests": b"90", b"3|canary:requests": b"10",
        b"4|champion:requests": b"50", b"4|canary:requests": b"50",
        b"4|canary:metric:accuracy:n": b"2", b"4|canary:metric:accuracy:sum": b"1.0",
        b"4|canary:metric:accuracy:ss": b"1.0",
        b"canary:drift:v2:x:0:3": b"7",  # drift: per model version, not per epoch
        b"shadow-v3:shadow:requests": b"5",
    }  # fmt: skip
    decoded = decode_stats(fields)
    assert sorted(decoded.epochs) == [3, 4]
    assert decoded.epochs[3]["canary"].requests == 10
    assert decoded.epochs[4]["canary"].metrics["accuracy"] == MetricStats(2, 1.0, 1.0)
    assert decoded.variants()["champion"].requests == 140
    assert decoded.shadows["shadow-v3"].requests == 5
    assert "drift" not in decoded.epochs.get(0, {})
    assert parse_drift_fields(fields)[("canary", "v2")].features == {0: [0, 0, 0, 7]}


def test_fields_from_before_epochs_read_as_epoch_zero() -> None:
    decoded = decode_stats({"champion:requests": "12", "champion:metric:accuracy:n": "3"})
    assert list(decoded.epochs) == [0]
    assert decoded.epochs[0]["champion"].requests == 12


def test_a_baseline_subtracts_per_epoch() -> None:
    before = {"3|champion:requests": "90", "3|canary:requests": "10"}
    after = {**before, "3|champion:requests": "95", "4|canary:requests": "7"}
    since = decode_stats(after) - decode_stats(before)
    assert since.epochs[3]["champion"].requests == 5
    assert "canary" not in since.epochs[3]  # nothing new: left out
    assert since.epochs[4]["canary"].requests == 7


def test_served_mapping_carries_the_epoch_and_reads_the_old_form() -> None:
    value = encode_served("canary", "v2", 4, "1")
    assert decode_served(value) == Served("canary", "v2", 4, "1")
    assert decode_served("canary|v2|[0.1, 0.9]") == Served("canary", "v2", 0, "[0.1, 0.9]")
    assert decode_served(encode_served("a", "v1", 12, "x|y")).prediction == "x|y"


def test_a_paused_epoch_routes_everything_to_the_champion() -> None:
    assert routed_weights(CONFIG, paused=False) == {"champion": 90.0, "canary": 10.0}
    assert routed_weights(CONFIG, paused=True) == {"champion": 100.0, "canary": 0.0}


def test_epochs_know_weights_versions_and_times() -> None:
    records = {
        b"3": epoch_record(CONFIG, paused=False, started_at=100.0).encode(),
        b"5": epoch_record(CONFIG, paused=True, started_at=200.0).encode(),
    }
    stats = decode_stats({"3|champion:requests": "9", "0|champion:requests": "1"})
    epochs = decode_epochs(records, stats)
    assert [e.version for e in epochs] == [0, 3, 5]
    unknown, first, paused = epochs
    assert unknown.weights is None and not unknown.known
    assert first.weights == {"champion": 90.0, "canary": 10.0}
    assert first.model_versions == {"champion": "v1", "canary": "v2"}
    assert (first.start, first.end) == (100.0, 200.0)
    assert first.variants["champion"].requests == 9
    assert (
        paused.paused
        and paused.end is None
        and paused.weights == {"champion": 100.0, "canary": 0.0}
    )
    assert "config v3" in first.label and "champion 90 %" in first.label


@pytest.mark.parametrize("bad", [{"1|champion:requests": "x"}, {"x|champion:requests": "1"}])
def test_fields_that_do_not_parse_are_skipped(bad: dict[str, str]) -> None:
    assert decode_stats(bad).epochs == {}


def test_a_mapping_carries_its_unit_whatever_characters_it_holds() -> None:
    for unit in ("alice", "", "o'brien|{x}", "zoë|1|2"):
        value = encode_served("canary", "v2", 4, "1|x", unit)
        assert decode_served(value) == Served("canary", "v2", 4, "1|x", unit)
    assert decode_served(encode_served("canary", "v2", 4, 1)).unit is None
    assert encode_served("canary", "v2", 4, Unanswered.ERROR, "alice") == UNSCORED
