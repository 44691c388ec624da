"""Agreement with GrowthBook's own Python SDK, an implementation nobody here wrote.

The SDK (``growthbook`` from PyPI, a dev dependency) is run as a
GrowthBook-instrumented app would run it: one ``GrowthBook`` per user, an
``Experiment`` keyed by the abgate seed with the same weights (and
namespace). Unit ids include characters outside the Basic Multilingual Plane
(emoji, CJK Extension B), which the SDKs hash as UTF-16 surrogate pairs.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from growthbook import Experiment, GrowthBook
from growthbook.core import inNamespace

from experiments.config import ExperimentConfig
from gateway.assignment import (
    Assigner,
    bucket_ranges,
    choose_variation,
    in_namespace,
    layout_properties,
)
from gateway.live import LiveExperiments

UNITS = 2000
# Beside ASCII: BMP text (accents, CJK), emoji, CJK Extension B and mathematical letters.
_PIECES = ["user", "é", "用户", "😀", "🧪", "\U00020000", "\U0002a6d6", "𝔘", "-", "42"]


def unit_ids(count: int = UNITS, seed: int = 14) -> list[str]:
    """``count`` distinct ids; three in four hold a character outside the BMP."""
    rng = random.Random(seed)
    found: list[str] = []
    seen: set[str] = set()
    while len(found) < count:
        unit = "".join(rng.choice(_PIECES) for _ in range(rng.randint(1, 4))) + str(len(found))
        if len(found) % 4 == 0:
            unit = f"user-{len(found)}"
        if unit not in seen:
            seen.add(unit)
            found.append(unit)
    return found


def test_the_ids_hold_enough_characters_outside_the_bmp() -> None:
    outside = [u for u in unit_ids() if max(u) > "\uffff"]
    assert len(outside) >= UNITS // 2


def config(
    variants: int,
    ramp_index: int | None,
    layout: str,
    ramp_weight: float = 20,
    namespace: list[Any] | None = None,
    name: str = "agree",
) -> ExperimentConfig:
    """An experiment of ``variants`` variants, the ramp (canary) one at ``ramp_index``."""
    others = variants - (ramp_index is not None)
    # Unequal weights, so that a swapped range cannot pass unnoticed.
    shares = [float(i + 1) for i in range(others)]
    rest = 100 - (ramp_weight if ramp_index is not None else 0)
    weights = [rest * s / sum(shares) for s in shares]
    rows: list[dict[str, Any]] = []
    for i in range(variants):
        if i == ramp_index:
            role, weight = "canary", ramp_weight
        else:
            role = "challenger" if any(r["role"] == "champion" for r in rows) else "champion"
            weight = weights.pop(0)
        rows.append(
            {
                "name": f"v{i}",
                "role": role,
                "model_version": f"m{i}",
                "endpoints": [f"http://127.0.0.1:{1000 + i}"],
                "weight": weight,
            }
        )
    # Weights are floats; make them sum to exactly 100 as the config requires.
    rows[-1]["weight"] += 100 - sum(r["weight"] for r in rows)
    data: dict[str, Any] = {
        "name": name,
        "model": "agree",
        "seed": f"seed-{name}",
        "variants": rows,
        "assignment": {"layout": layout},
    }
    if namespace is not None:
        data["namespace"] = namespace
    return ExperimentConfig.model_validate(data)


def sdk_result(cfg: ExperimentConfig, unit: str) -> Any:
    """What a GrowthBook-instrumented app gets for ``unit`` in the same experiment."""
    ns = cfg.namespace
    experiment = Experiment(
        key=cfg.seed,
        variations=list(range(len(cfg.variants))),
        weights=[v.weight / 100 for v in cfg.variants],
        hashVersion=2,
        namespace=(ns.id, ns.start, ns.end) if ns is not None else None,
    )
    return GrowthBook(attributes={"id": unit}).run(experiment)


def agreement(cfg: ExperimentConfig, units: list[str]) -> float:
    assigner = Assigner.from_config(cfg)
    same = sum(assigner.assign(u).index == sdk_result(cfg, u).variationId for u in units)
    return same / len(units)


@pytest.mark.parametrize("variants", [2, 3, 5])
@pytest.mark.parametrize("ramp_weight", [5, 37.5, 80])
def test_growthbook_layout_agrees_with_the_sdk_on_every_id(
    variants: int, ramp_weight: float
) -> None:
    # The canary in the middle of the list: the case the monotone layout cannot agree on.
    cfg = config(variants, variants // 2, "growthbook", ramp_weight)
    assert agreement(cfg, unit_ids()) == 1.0


@pytest.mark.parametrize("variants", [2, 3, 5])
def test_without_a_ramp_variant_both_layouts_agree_with_the_sdk(variants: int) -> None:
    for layout in ("monotone", "growthbook"):
        assert agreement(config(variants, None, layout), unit_ids()) == 1.0


def code_point_fnv1a32(text: str) -> int:
    """FNV-1a over code points: how abgate hashed ids before it followed the SDKs."""
    value = 2166136261
    for char in text:
        value = ((value ^ ord(char)) * 16777619) % (1 << 32)
    return value


def test_non_bmp_ids_would_disagree_if_hashed_by_code_point() -> None:
    # The agreement checks can fail: a code-point hash puts many of these ids elsewhere.
    cfg = config(3, None, "growthbook")
    ranges = bucket_ranges(3, 1.0, [v.weight / 100 for v in cfg.variants])
    units = [u for u in unit_ids() if max(u) > "\uffff"]
    moved = 0
    for unit in units:
        n = code_point_fnv1a32(str(code_point_fnv1a32(cfg.seed + unit))) % 10000 / 10000
        moved += choose_variation(n, ranges) != sdk_result(cfg, unit).variationId
    assert moved > len(units) // 10


@pytest.mark.parametrize("layout", ["monotone", "growthbook"])
@pytest.mark.parametrize(("variants", "ramp_index"), [
    (2, 0), (2, 1), (3, 0), (3, 1), (3, 2), (4, 1), (4, 3), (5, 2), (5, 4),
])  # fmt: skip
def test_layout_properties_say_what_each_layout_gives(
    layout: str, variants: int, ramp_index: int
) -> None:
    """What ``abgate validate`` prints is what the SDK and a ramp actually show."""
    claimed = layout_properties(layout, variants, ramp_index)  # type: ignore[arg-type]
    units = unit_ids(600)
    agrees = all(agreement(config(variants, ramp_index, layout, w), units) == 1.0
                 for w in (5, 50))  # fmt: skip
    assert agrees == claimed.agrees_with_growthbook

    ramp = f"v{ramp_index}"
    history: dict[str, list[str]] = {u: [] for u in units}
    for weight in (0, 5, 10, 25, 50, 90):
        assigner = Assigner.from_config(config(variants, ramp_index, layout, weight))
        for unit in units:
            history[unit].append(assigner.assign(unit).name)
    moved_between_others = any(
        a != b and ramp not in (a, b)
        for seen in history.values()
        for a, b in itertools.pairwise(seen)
    )
    assert (not moved_between_others) == claimed.ramp_safe


def test_monotone_layout_with_a_canary_among_three_disagrees_with_the_sdk() -> None:
    # What the monotone layout gives up, measured: the second hash picks among the others.
    rate = agreement(config(3, 2, "monotone"), unit_ids())
    assert 0.4 < rate < 0.95


# --- namespaces ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "namespace", [("checkout", 0.0, 0.5), ("checkout", 0.25, 0.7), ("pricing", 0.9, 1.0)]
)
def test_in_namespace_agrees_with_the_sdk_on_every_id(namespace: tuple[str, float, float]) -> None:
    units = unit_ids()
    ours = [in_namespace(u, namespace) for u in units]
    assert ours == [inNamespace(u, namespace) for u in units]
    assert 0 < sum(ours) < len(units)  # both answers occur


def test_two_experiments_in_disjoint_namespaces_agree_with_the_sdk_unit_by_unit() -> None:
    left = config(3, None, "growthbook", namespace=["checkout", 0, 0.45], name="left")
    right = config(2, 1, "growthbook", namespace=["checkout", 0.45, 0.9], name="right")
    live = LiveExperiments()
    live.install(left, 1)
    live.install(right, 1)
    route = live.for_model("agree")
    counts = {"left": 0, "right": 0, None: 0}
    for unit in unit_ids():
        picked = route.pick(unit)
        in_left, in_right = (sdk_result(c, unit) for c in (left, right))
        # Exactly one experiment, the one the SDK puts the unit in (or none in the gap).
        assert not (in_left.inExperiment and in_right.inExperiment)
        expected = "left" if in_left.inExperiment else "right" if in_right.inExperiment else None
        assert (picked.name if picked is not None else None) == expected, unit
        if picked is not None:
            sdk = in_left if expected == "left" else in_right
            assert picked.assigner.assign(unit).index == sdk.variationId, unit
        counts[expected] += 1
    assert min(counts.values()) > 100
