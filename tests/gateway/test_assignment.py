"""Assignment: GrowthBook conformance, split accuracy, monotone ramping, determinism."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
from collections import Counter
from dataclasses import FrozenInstanceError
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.loader import load_experiment
from gateway.assignment import (
    Assigner,
    bucket_ranges,
    choose_variation,
    equal_weights,
    fnv1a32,
    fnv1a32_continue,
    hash_unit,
    in_namespace,
)

VECTORS = json.loads(
    (Path(__file__).parent / "vectors" / "cases.assignment-subset.json").read_text()
)
REPO = Path(__file__).resolve().parents[2]


def textbook_fnv1a32(text: str) -> int:
    """FNV-1a, 32 bits, over UTF-16 code units, written out independently of the module."""
    value = 2166136261
    for char in text:
        point = ord(char)
        if point > 0xFFFF:  # a surrogate pair, as JavaScript's charCodeAt sees it
            point -= 0x10000
            units = [0xD800 + (point >> 10), 0xDC00 + (point & 0x3FF)]
        else:
            units = [point]
        for unit in units:
            value = ((value ^ unit) * 16777619) % (1 << 32)
    return value


def ids(count: int, prefix: str = "user") -> list[str]:
    return [f"{prefix}-{i}" for i in range(count)]


# --- GrowthBook conformance ------------------------------------------------------


@pytest.mark.parametrize(("seed", "value", "version", "expected"), VECTORS["hash"])
def test_hash_vectors(seed: str, value: str, version: int, expected: float | None) -> None:
    assert hash_unit(seed, value, version) == expected


def test_hash_vectors_include_the_unknown_version_row() -> None:
    assert ["abc", "def", 99, None] in VECTORS["hash"]


@pytest.mark.parametrize(("name", "args", "expected"), VECTORS["getBucketRange"])
def test_bucket_range_vectors(name: str, args: list[Any], expected: list[list[float]]) -> None:
    num_variations, coverage, weights = args
    ranges = bucket_ranges(num_variations, coverage, weights)
    assert len(ranges) == len(expected), name
    for (start, end), (want_start, want_end) in zip(ranges, expected, strict=True):
        assert start == pytest.approx(want_start, abs=1e-9), name
        assert end == pytest.approx(want_end, abs=1e-9), name


@pytest.mark.parametrize(("name", "n", "ranges", "expected"), VECTORS["chooseVariation"])
def test_choose_variation_vectors(name: str, n: float, ranges: list[list[float]],
                                  expected: int) -> None:  # fmt: skip
    assert choose_variation(n, [(s, e) for s, e in ranges]) == expected, name


@pytest.mark.parametrize(("n", "expected"), VECTORS["getEqualWeights"])
def test_equal_weights_vectors(n: int, expected: list[float]) -> None:
    assert [round(w, 8) for w in equal_weights(n)] == expected


@pytest.mark.parametrize(("name", "unit", "namespace", "expected"), VECTORS["inNamespace"])
def test_in_namespace_vectors(name: str, unit: str, namespace: list[Any], expected: bool) -> None:
    assert in_namespace(unit, (namespace[0], namespace[1], namespace[2])) is expected, name


_PLAIN_EXPERIMENT_KEYS = {"key", "variations", "weights", "seed", "hashVersion"}
_RUN_ROWS = [
    row
    for row in VECTORS["run"]
    if set(row[1]) == {"attributes"}
    and set(row[1]["attributes"]) == {"id"}
    and isinstance(row[1]["attributes"]["id"], str)
    and row[1]["attributes"]["id"]
    and set(row[2]) <= _PLAIN_EXPERIMENT_KEYS
    and len(row[2]["variations"]) >= 2
    and row[4]
]


def test_enough_plain_run_rows_are_checked() -> None:
    assert len(_RUN_ROWS) >= 30


@pytest.mark.parametrize("row", _RUN_ROWS, ids=[row[0] for row in _RUN_ROWS])
def test_assigner_agrees_with_growthbook_run_rows(row: list[Any]) -> None:
    """Without a ramp variant, the assigner is GrowthBook's experiment assignment."""
    _, context, experiment, expected_value, _, _ = row
    variations = experiment["variations"]
    weights = experiment.get("weights") or equal_weights(len(variations))
    assigner = Assigner(
        experiment.get("seed", experiment["key"]),
        tuple(f"v{i}" for i in range(len(variations))),
        tuple(w * 100 for w in weights),
        hash_version=experiment.get("hashVersion", 1),
    )
    assignment = assigner.assign(context["attributes"]["id"])
    assert variations[assignment.index] == expected_value
    assert assignment.reason == "hash"


# --- the hash itself ---------------------------------------------------------------


@given(st.text(max_size=64))
def test_reference_fnv_matches_the_textbook(text: str) -> None:
    assert fnv1a32(text) == textbook_fnv1a32(text)


@given(st.text(max_size=40), st.text(max_size=64))
def test_streaming_fnv_equals_the_reference(seed: str, unit: str) -> None:
    assert fnv1a32_continue(fnv1a32(seed), unit) == textbook_fnv1a32(seed + unit)


@given(st.text(max_size=40), st.text(max_size=64))
@settings(max_examples=50)
def test_assigner_hash_equals_hash_unit(seed: str, unit: str) -> None:
    for version in (1, 2):
        assigner = Assigner(seed, ("a",), (100,), hash_version=version)
        assert assigner.hash_value(unit) == hash_unit(seed, unit, version)


def test_non_bmp_characters_hash_by_utf16_code_units() -> None:
    # U+1F600 is the surrogate pair D83D DE00 in UTF-16, as GrowthBook's SDKs hash it.
    first = ((2166136261 ^ 0xD83D) * 16777619) % (1 << 32)
    assert fnv1a32("😀") == ((first ^ 0xDE00) * 16777619) % (1 << 32)
    assert fnv1a32("😀") != ((2166136261 ^ 0x1F600) * 16777619) % (1 << 32)


def test_lone_surrogates_hash_as_their_own_code_unit() -> None:
    assert fnv1a32("\ud800") == ((2166136261 ^ 0xD800) * 16777619) % (1 << 32)


# --- layout and split ----------------------------------------------------------------


def within_noise(count: int, total: int, share: float, sigmas: float = 4.0) -> bool:
    expected = total * share
    return abs(count - expected) <= sigmas * math.sqrt(total * share * (1 - share))


@pytest.mark.parametrize("ramp_variant", [None, "b"])
def test_ten_thousand_units_split_90_10(ramp_variant: str | None) -> None:
    assigner = Assigner("split-test", ("a", "b"), (90, 10), ramp_variant=ramp_variant)
    counts = Counter(assigner.assign(unit).name for unit in ids(10_000))
    assert within_noise(counts["b"], 10_000, 0.10), counts
    assert counts["a"] + counts["b"] == 10_000


def test_demo_config_split_80_10_10() -> None:
    assigner = Assigner.from_config(load_experiment(REPO / "experiments" / "demo.yaml"))
    assert assigner.ramp_variant == "canary"
    units = [str(uuid.UUID(int=i * 7919 + 12345)) for i in range(10_000)]
    counts = Counter(assigner.assign(unit).name for unit in units)
    assert within_noise(counts["champion"], 10_000, 0.8), counts
    assert within_noise(counts["challenger"], 10_000, 0.1), counts
    assert within_noise(counts["canary"], 10_000, 0.1), counts


def test_single_hash_layout_is_growthbook_bucket_ranges() -> None:
    weights = (50, 30, 0, 20)
    assigner = Assigner("gb", ("a", "b", "c", "d"), weights)
    ranges = bucket_ranges(4, 1, [w / 100 for w in weights])
    for unit in ids(2_000):
        h = hash_unit("gb", unit)
        assert h is not None
        assert assigner.assign(unit).index == choose_variation(h, ranges)


def test_ramp_layout_puts_the_top_of_the_first_hash_in_the_ramp_variant() -> None:
    assigner = Assigner("ramp", ("champion", "canary"), (75, 25), ramp_variant="canary")
    for unit in ids(2_000):
        h = hash_unit("ramp", unit)
        assert h is not None
        assert (assigner.assign(unit).name == "canary") == (h >= 1 - 25 / 100)


@pytest.mark.parametrize("ramp_variant", [None, "canary"])
def test_weight_zero_variants_get_nobody(ramp_variant: str | None) -> None:
    assigner = Assigner(
        "zero", ("champion", "challenger", "canary"), (60, 0, 40), ramp_variant=ramp_variant
    )
    assert "challenger" not in {assigner.assign(unit).name for unit in ids(10_000)}
    closed = Assigner("zero", ("champion", "canary"), (100, 0), ramp_variant="canary")
    assert {closed.assign(unit).name for unit in ids(10_000)} == {"champion"}
    full = Assigner("zero", ("champion", "canary"), (0, 100), ramp_variant="canary")
    assert {full.assign(unit).name for unit in ids(10_000)} == {"canary"}


others_weights = st.lists(
    st.one_of(st.integers(0, 100).map(float), st.floats(0, 100)), min_size=1, max_size=4
).filter(lambda ws: sum(ws) > 0)
percent = st.one_of(st.integers(0, 100).map(float), st.floats(0, 100))
unit_ids = st.lists(st.text(min_size=1, max_size=40), min_size=1, max_size=30)


def ramp_assigner(seed: str, relative: list[float], ramp_weight: float) -> Assigner:
    """The canary at ``ramp_weight``; the others share the rest by ``relative``."""
    total = sum(relative)
    names = (*(f"other{i}" for i in range(len(relative))), "canary")
    # w / total first: (100 - r) * w can round a subnormal w to 0 before the division.
    weights = (*((100 - ramp_weight) * (w / total) for w in relative), ramp_weight)
    return Assigner(seed, names, weights, ramp_variant="canary")


@given(st.text(max_size=20), others_weights, percent, percent, unit_ids)
@settings(max_examples=60, deadline=None)
def test_raising_the_ramp_weight_is_monotone(
    seed: str, relative: list[float], first: float, second: float, units: list[str]
) -> None:
    low, high = sorted((first, second))
    before = ramp_assigner(seed, relative, low)
    after = ramp_assigner(seed, relative, high)
    for unit in units:
        was, now = before.assign(unit).name, after.assign(unit).name
        if was == "canary":
            assert now == "canary"  # never moved out of the ramp variant
        elif now != "canary":
            assert now == was  # never moved between the other variants


@given(st.text(max_size=20), others_weights, percent, unit_ids)
@settings(max_examples=60, deadline=None)
def test_weight_zero_others_get_nobody_at_any_ramp_weight(
    seed: str, relative: list[float], ramp_weight: float, units: list[str]
) -> None:
    assigner = ramp_assigner(seed, relative, ramp_weight)
    empty = {f"other{i}" for i, w in enumerate(relative) if w == 0}
    if ramp_weight == 0:
        empty.add("canary")
    for unit in units:
        assert assigner.assign(unit).name not in empty


# --- determinism, overrides, shadows ------------------------------------------------


def test_same_unit_same_config_same_variant() -> None:
    config = load_experiment(REPO / "experiments" / "demo.yaml")
    first, second = Assigner.from_config(config), Assigner.from_config(config)
    units = ids(1_000)
    assert [first.assign(u) for u in units] == [second.assign(u) for u in units]
    assert [first.assign(u) for u in units] == [first.assign(u) for u in units]


def test_assignment_does_not_depend_on_the_process() -> None:
    """Another interpreter with another string-hash seed assigns exactly the same."""
    script = (
        "import json, sys\n"
        "from gateway.assignment import Assigner\n"
        "a = Assigner('proc', ('a', 'b', 'c'), (50, 30, 20), ramp_variant='c')\n"
        "print(json.dumps([a.assign(f'u{i}').name for i in range(500)]))\n"
    )
    assigner = Assigner("proc", ("a", "b", "c"), (50, 30, 20), ramp_variant="c")
    here = [assigner.assign(f"u{i}").name for i in range(500)]
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
            check=True, timeout=60,
        )  # fmt: skip
        assert json.loads(out.stdout) == here


def test_assigner_is_frozen() -> None:
    assigner = Assigner("s", ("a", "b"), (50, 50))
    with pytest.raises(FrozenInstanceError):
        assigner.seed = "other"  # type: ignore[misc]


def test_overrides_force_a_variant_and_ignore_unknown_names() -> None:
    assigner = Assigner(
        "o", ("champion", "challenger", "canary"), (100, 0, 0), ramp_variant="canary",
        shadows=(("shadow", 1.0),),
    )  # fmt: skip
    forced = assigner.assign("u1", forced="challenger")
    assert (forced.name, forced.index, forced.reason) == ("challenger", 1, "override")
    assert assigner.assign("u1", forced="canary").reason == "override"
    for name in ("nope", "shadow", "", "CHAMPION"):
        hashed = assigner.assign("u1", forced=name)
        assert (hashed.name, hashed.reason) == ("champion", "hash")
    assert assigner.assign("u1") == assigner.assign("u1", forced=None)


def test_shadows_sample_independently_and_stickily() -> None:
    assigner = Assigner(
        "sh", ("champion",), (100,),
        shadows=(("always", 1.0), ("never", 0.0), ("third", 0.3), ("half", 0.5)),
    )  # fmt: skip
    units = ids(10_000)
    picked = [assigner.shadows_for(unit) for unit in units]
    assert all(p[0] == "always" and "never" not in p for p in picked)
    third = sum("third" in p for p in picked)
    half = sum("half" in p for p in picked)
    both = sum("third" in p and "half" in p for p in picked)
    assert within_noise(third, 10_000, 0.3)
    assert within_noise(half, 10_000, 0.5)
    assert within_noise(both, 10_000, 0.15)  # independent of each other
    assert all(p == ("always", "third", "half") for p in picked if len(p) == 3)  # config order
    assert picked == [assigner.shadows_for(unit) for unit in units]


def test_shadow_sampling_matches_its_own_hash() -> None:
    assigner = Assigner("sh", ("champion",), (100,), shadows=(("s", 0.25),))
    for unit in ids(2_000):
        h = hash_unit("sh/abgate:shadow:s", unit)
        assert h is not None
        assert ("s" in assigner.shadows_for(unit)) == (h < 0.25)


def test_no_shadows() -> None:
    assert Assigner("s", ("a",), (100,)).shadows_for("u") == ()


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"variants": (), "weights": ()}, "at least one variant"),
        ({"variants": ("a", "b"), "weights": (100,)}, "2 variants but 1 weights"),
        ({"variants": ("a", "b"), "weights": (90, 5)}, "sum to 100"),
        ({"variants": ("a", "a"), "weights": (50, 50)}, "unique"),
        ({"variants": ("a", "b"), "weights": (110, -10)}, "non-negative"),
        ({"variants": ("a",), "weights": (100,), "ramp_variant": "b"}, "ramp variant"),
        ({"variants": ("a",), "weights": (100,), "shadows": (("a", 1.0),)}, "unique"),
        ({"variants": ("a",), "weights": (100,), "shadows": (("s", 2.0),)}, "sample rates"),
        ({"variants": ("a",), "weights": (100,), "hash_version": 3}, "hash version"),
    ],
)
def test_assigner_refuses_inconsistent_values(kwargs: dict[str, Any], phrase: str) -> None:
    with pytest.raises(ValueError, match=phrase):
        Assigner("s", **kwargs)


def test_from_config_without_a_canary_uses_one_hash() -> None:
    config = load_experiment(REPO / "experiments" / "demo.yaml")
    config = config.with_weights({"champion": 80, "challenger": 20, "canary": 0})
    data = config.model_dump(mode="json")
    data["variants"] = [v for v in data["variants"] if v["role"] != "canary"]
    no_canary = type(config).model_validate(data)
    assigner = Assigner.from_config(no_canary)
    assert assigner.ramp_variant is None
    ranges = bucket_ranges(2, 1, [0.8, 0.2])
    for unit in ids(500):
        assert assigner.assign(unit).index == choose_variation(hash_unit(config.seed, unit) or 0,
                                                               ranges)  # fmt: skip
