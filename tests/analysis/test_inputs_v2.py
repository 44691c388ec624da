"""``abgate analyze`` input version 2: epochs with their weights; unknown fields rejected."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest

from analysis.decisions import analyze
from analysis.inputs import InputError, experiment_from_json


def stats(requests: int, correct: int) -> dict[str, Any]:
    return {
        "requests": requests,
        "metrics": {"accuracy": {"type": "proportion", "n": requests, "sum": correct}},
    }


# 90/10 for an hour, then 50/50: a legitimate weight change, every epoch's split sound.
TWO_EPOCHS: dict[str, Any] = {
    "schema_version": 2,
    "experiment": "checkout",
    "settings": {"sequential": False, "min_samples": 100},
    "variants": [
        {"name": "champion", "role": "champion", "model_version": "v1"},
        {"name": "canary", "role": "canary", "model_version": "v2"},
    ],
    "epochs": [
        {
            "version": 1, "start": 1_714_521_600, "end": 1_714_525_200,
            "weights": {"champion": 90, "canary": 10},
            "model_versions": {"champion": "v1", "canary": "v2"},
            "variants": {"champion": stats(9040, 7590), "canary": stats(960, 810)},
        },
        {
            "version": 2, "start": 1_714_525_200,
            "weights": {"champion": 50, "canary": 50},
            "model_versions": {"champion": "v1", "canary": "v2"},
            "variants": {"champion": stats(4960, 4170), "canary": stats(5040, 4250)},
        },
    ],
}  # fmt: skip


def with_broken_second_epoch() -> dict[str, Any]:
    data = copy.deepcopy(TWO_EPOCHS)
    data["epochs"][1]["variants"]["canary"] = stats(4600, 3880)  # records lost
    return data


def test_a_weight_change_across_epochs_is_no_mismatch() -> None:
    result = analyze(experiment_from_json(TWO_EPOCHS))
    assert result.srm.checked and not result.srm.mismatch
    assert all(v.rule != "srm" for v in result.verdicts)
    assert [c.epoch.version for c in result.srm.epochs] == [1, 2]
    # Totals are the epochs summed; the variant's weight defaults to the last epoch's.
    canary = next(v for v in result.data.variants if v.name == "canary")
    assert (canary.requests, canary.metrics["accuracy"].n, canary.weight) == (6000, 6000, 50)


def test_the_same_totals_without_epochs_raise_the_old_false_alarm() -> None:
    v1 = {
        "settings": TWO_EPOCHS["settings"],
        "variants": [
            {"name": "champion", "role": "champion", "weight": 50, **stats(14000, 11760)},
            {"name": "canary", "role": "canary", "weight": 50, **stats(6000, 5060)},
        ],
    }
    result = analyze(experiment_from_json(v1))  # version 1 is read as before
    assert result.srm.mismatch and result.srm.epochs == ()


def test_a_genuine_mismatch_in_one_epoch_is_flagged_naming_it() -> None:
    result = analyze(experiment_from_json(with_broken_second_epoch()))
    assert result.srm.mismatch
    assert "config v2" in result.srm.message and "config v1" not in result.srm.message
    assert {v.action for v in result.verdicts} == {"hold"}
    assert result.verdicts[0].evidence["epochs"] == [result.srm.epochs[1].epoch.label]


def test_a_variant_is_read_as_its_current_model_version() -> None:
    data = copy.deepcopy(TWO_EPOCHS)
    data["epochs"][0]["model_versions"]["canary"] = "v0"  # another model in the first epoch
    canary = next(v for v in experiment_from_json(data).variants if v.name == "canary")
    assert canary.requests == 5040


@pytest.mark.parametrize(
    ("edit", "path"),
    [
        (lambda d: d.update(note="x"), "note"),
        (lambda d: d["variants"][1].update(requests=5), "variants.1.requests"),
        (lambda d: d["epochs"][1].update(weight={}), "epochs.1.weight"),
        (lambda d: d["epochs"][0]["variants"]["canary"].update(fallbacks=1),
         "epochs.0.variants.canary.fallbacks"),
        (lambda d: d["epochs"][1]["variants"]["canary"]["metrics"]["accuracy"].update(mean=0.8),
         "epochs.1.variants.canary.metrics.accuracy.mean"),
        (lambda d: d["epochs"][1]["weights"].update(shadow=1), "epochs.1.weights.shadow"),
        (lambda d: d["epochs"][1]["variants"].update(other=stats(1, 1)),
         "epochs.1.variants.other"),
        (lambda d: d["epochs"][1].pop("weights"), "epochs.1.weights"),
        (lambda d: d["epochs"][1].update(version=1), "epochs.1.version"),
        (lambda d: d.update(schema_version=3), "schema_version"),
        (lambda d: d.update(windows=[{"start": 0, "variants": {}, "end": 1}]), "windows.0.end"),
    ],
)  # fmt: skip
def test_unknown_or_bad_fields_are_rejected_with_their_path(edit: Any, path: str) -> None:
    data = copy.deepcopy(TWO_EPOCHS)
    edit(data)
    with pytest.raises(InputError) as caught:
        experiment_from_json(data)
    assert caught.value.path == path, str(caught.value)


def test_version_1_rejects_unknown_fields_and_points_epochs_to_version_2() -> None:
    v1 = {"variants": [{"name": "a", "role": "champion", "requests": 10, "colour": "red"},
                       {"name": "b", "requests": 10}]}  # fmt: skip
    with pytest.raises(InputError, match=r"^variants\.0\.colour: unknown field"):
        experiment_from_json(v1)
    del v1["variants"][0]["colour"]
    v1["epochs"] = []
    with pytest.raises(InputError, match="schema_version"):
        experiment_from_json(v1)


def test_abgate_analyze_reads_version_2(tmp_path) -> None:
    sound, broken = tmp_path / "sound.json", tmp_path / "broken.json"
    sound.write_text(json.dumps(TWO_EPOCHS))
    broken.write_text(json.dumps(with_broken_second_epoch()))
    reports = []
    for path in (sound, broken):
        done = subprocess.run(
            [sys.executable, "-m", "abgate", "analyze", str(path)],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        reports.append(json.loads(done.stdout))
    assert reports[0]["srm"]["mismatch"] is False
    assert [e["version"] for e in reports[0]["srm"]["epochs"]] == [1, 2]
    assert reports[1]["srm"]["mismatch"] is True
    assert [e["mismatch"] for e in reports[1]["srm"]["epochs"]] == [False, True]
    assert {v["rule"] for v in reports[1]["verdicts"]} == {"srm"}
