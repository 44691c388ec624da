"""Deterministic, sticky assignment of units to variants: the first step of every request.

Buckets come from GrowthBook's hash (32-bit FNV-1a over the UTF-16 code
units of the text, as its SDKs hash), so a unit lands in the same bucket here
as in a GrowthBook-instrumented app that uses the same seed. Two layouts:

* ``growthbook`` (and any experiment without a ramp variant): one hash,
  GrowthBook's bucket ranges and chooseVariation; with the same seed and
  weights a unit gets the same variation index as in GrowthBook, for any
  number of variants.
* ``monotone``, with a ramp variant (the canary) of weight ``w``: the first hash puts the unit
  in the ramp variant iff ``h1 >= 1 - w/100`` (the ramp variant owns the top
  end), otherwise a second, independently seeded hash picks among the other
  variants by their relative weights. Raising ``w`` therefore never moves a
  unit out of the ramp variant, and never moves a unit between the other
  variants while their relative weights stay the same. It agrees with
  GrowthBook only where the second hash is not needed (see
  ``agrees_with_growthbook``).

Namespaces (GrowthBook's ``[id, start, end]``) are checked with
``in_namespace`` before any of this: they pick which experiment of a model a
unit belongs to.

Nothing here imports pydantic or does I/O: an ``Assigner`` is built once per
config version from plain values, and ``assign`` is one or two hashes and a
tuple index.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from experiments.config import ExperimentConfig

__all__ = [
    "FNV_OFFSET_BASIS",
    "FNV_PRIME",
    "LAYOUTS",
    "NAMESPACE_BUCKETS",
    "NAMESPACE_HASH_VERSION",
    "NAMESPACE_SEED_PREFIX",
    "Assigner",
    "Assignment",
    "AssignmentReason",
    "Layout",
    "LayoutProperties",
    "bucket_ranges",
    "choose_variation",
    "describe_layout",
    "equal_weights",
    "fnv1a32",
    "fnv1a32_continue",
    "hash_unit",
    "in_namespace",
    "layout_properties",
    "namespace_bucket",
    "namespace_table",
    "utf16_code_units",
]

FNV_OFFSET_BASIS = 0x811C9DC5
FNV_PRIME = 0x01000193
_MASK32 = 0xFFFFFFFF
# Code units in this machine's byte order, so that a memoryview reads them as unsigned shorts.
_UTF16 = "utf-16-le" if sys.byteorder == "little" else "utf-16-be"
_LAST_BMP = "\uffff"

# Buckets per hash version: v1 hashes to n % 1000 / 1000, v2 to n % 10000 / 10000.
_BUCKETS = {1: 1000, 2: 10000}

# Appended to the experiment seed for the independent hashes. Changing either
# moves units between variants (or in and out of shadows): never change them.
_OTHERS_SEED_SUFFIX = "/abgate:others"
_SHADOW_SEED_SUFFIX = "/abgate:shadow:"

# Relative weights of the non-ramp variants are rescaled floats (w_i / sum);
# rounding their cumulative bounds keeps ulp-level noise from moving a unit
# that sits exactly on a bound. The bucket grid (1e-4) is far coarser.
_BOUND_DECIMALS = 9

_WEIGHT_SUM_TOLERANCE = 1e-6

# GrowthBook's inNamespace hashes the unit with seed "__" + id, hash version 1.
NAMESPACE_SEED_PREFIX = "__"
NAMESPACE_HASH_VERSION = 1
NAMESPACE_BUCKETS = _BUCKETS[NAMESPACE_HASH_VERSION]

AssignmentReason = Literal["hash", "override"]
Layout = Literal["monotone", "growthbook"]
LAYOUTS: tuple[Layout, ...] = ("monotone", "growthbook")


def utf16_code_units(text: str) -> Iterable[int]:
    """The UTF-16 code units of ``text``: what JavaScript's ``charCodeAt`` walks.

    Characters outside the Basic Multilingual Plane (emoji, CJK Extension B)
    are two units, a surrogate pair; a lone surrogate is its own unit, as in
    JavaScript. ASCII text is its encoded bytes and other text within the
    plane its code points, both equal to its code units and cheaper to walk.
    """
    if text.isascii():
        return text.encode()
    if max(text) <= _LAST_BMP:
        return map(ord, text)
    return memoryview(text.encode(_UTF16, "surrogatepass")).cast("H")


def fnv1a32(text: str) -> int:
    """32-bit FNV-1a over the UTF-16 code units of ``text``, as GrowthBook's SDKs compute it.

    This is the reference implementation; the hot path uses ``fnv1a32_continue``.
    Both the JavaScript SDK (``charCodeAt``) and the Python SDK hash UTF-16 code
    units, so a unit id with an emoji lands in the same bucket in either.
    """
    value = FNV_OFFSET_BASIS
    for code in utf16_code_units(text):
        value ^= code
        value = (value * FNV_PRIME) % 2**32
    return value


def fnv1a32_continue(state: int, text: str) -> int:
    """Continue an FNV-1a hash: ``fnv1a32_continue(fnv1a32(a), b) == fnv1a32(a + b)``.

    Lets the seed's share of the hash be computed once per experiment. ASCII
    text (nearly every id) is iterated as its encoded bytes, with no UTF-16
    encoding step.
    """
    for code in text.encode() if text.isascii() else utf16_code_units(text):
        state = ((state ^ code) * FNV_PRIME) & _MASK32
    return state


def hash_unit(seed: str, unit: str, version: int = 2) -> float | None:
    """GrowthBook's hash of a unit id into [0, 1); ``None`` for an unknown hash version.

    v1: ``fnv1a32(unit + seed) % 1000 / 1000``;
    v2: ``fnv1a32(str(fnv1a32(seed + unit))) % 10000 / 10000``.
    """
    if version == 2:
        return fnv1a32(str(fnv1a32(seed + unit))) % 10000 / 10000
    if version == 1:
        return fnv1a32(unit + seed) % 1000 / 1000
    return None


def equal_weights(num_variations: int) -> list[float]:
    """GrowthBook's getEqualWeights: ``n`` equal weights summing to 1, empty for ``n <= 0``."""
    if num_variations <= 0:
        return []
    return [1.0 / num_variations] * num_variations


def bucket_ranges(
    num_variations: int, coverage: float = 1.0, weights: Sequence[float] | None = None
) -> list[tuple[float, float]]:
    """GrowthBook's getBucketRanges: one ``[start, end)`` range of [0, 1) per variation.

    Coverage is clamped to [0, 1]; weights that are missing, of the wrong
    length or not summing to 1 (within 0.01) fall back to equal weights.
    """
    coverage = min(max(coverage, 0.0), 1.0)
    chosen = list(weights) if weights is not None else equal_weights(num_variations)
    if len(chosen) != num_variations:
        chosen = equal_weights(num_variations)
    total = sum(chosen)
    if total < 0.99 or total > 1.01:
        chosen = equal_weights(num_variations)
    ranges: list[tuple[float, float]] = []
    cumulative = 0.0
    for weight in chosen:
        start = cumulative
        cumulative += weight
        ranges.append((start, start + coverage * weight))
    return ranges


def choose_variation(n: float, ranges: Sequence[tuple[float, float]]) -> int:
    """GrowthBook's chooseVariation: the first range with ``start <= n < end``, else -1."""
    for index, (start, end) in enumerate(ranges):
        if start <= n < end:
            return index
    return -1


def in_namespace(unit: str, namespace: tuple[str, float, float]) -> bool:
    """GrowthBook's inNamespace: whether ``unit`` hashes into the namespace's ``[start, end)``."""
    name, start, end = namespace
    n = hash_unit(NAMESPACE_SEED_PREFIX + name, unit, NAMESPACE_HASH_VERSION)
    return n is not None and start <= n < end


def namespace_bucket(namespace_id: str) -> Callable[[str], int]:
    """``unit -> bucket`` in ``range(NAMESPACE_BUCKETS)`` for a namespace id.

    ``bucket / NAMESPACE_BUCKETS`` is the value ``in_namespace`` compares with
    the namespace's range (GrowthBook's v1 hash of ``"__" + id``).
    """
    return _bucket_function(NAMESPACE_SEED_PREFIX + namespace_id, NAMESPACE_HASH_VERSION)


def namespace_table(ranges: Sequence[tuple[float, float]]) -> tuple[int, ...]:
    """For each namespace bucket, the index of the ``[start, end)`` range it falls in, else -1.

    Ranges are expected not to overlap (the config refuses overlaps); if they
    do, the first one listed wins.
    """
    table: list[int] = []
    for bucket in range(NAMESPACE_BUCKETS):
        n = bucket / NAMESPACE_BUCKETS
        table.append(next((i for i, (lo, hi) in enumerate(ranges) if lo <= n < hi), -1))
    return tuple(table)


@dataclass(frozen=True, slots=True)
class LayoutProperties:
    """What a layout gives for one experiment's shape: SDK agreement and ramp safety.

    ``agrees_with_growthbook``: a GrowthBook SDK with the same seed and weights
    assigns every unit the same variant, at every weight. ``ramp_safe``: as
    the ramp variant's weight changes (the others keeping their relative
    shares), units only move between the ramp variant and the others, never
    between two other variants.
    """

    agrees_with_growthbook: bool
    ramp_safe: bool


def layout_properties(
    layout: Layout, num_variants: int, ramp_index: int | None
) -> LayoutProperties:
    """Whether ``layout`` agrees with GrowthBook and is ramp safe, for variants in config order.

    Without a ramp variant both layouts are GrowthBook's and nothing ramps.
    ``monotone`` is ramp safe by construction and agrees with GrowthBook only
    for two variants with the ramp variant listed last (the first hash alone
    decides, and GrowthBook's last range is the top end). ``growthbook``
    agrees by construction; its ranges are laid out in config order, so as
    the ramp variant grows the boundary between two other variants moves
    unless at most one other variant sits on each side of it.
    """
    if ramp_index is None:
        return LayoutProperties(agrees_with_growthbook=True, ramp_safe=True)
    if layout == "monotone":
        agrees = num_variants == 2 and ramp_index == 1
        return LayoutProperties(agrees_with_growthbook=agrees, ramp_safe=True)
    safe = ramp_index <= 1 and num_variants - 1 - ramp_index <= 1
    return LayoutProperties(agrees_with_growthbook=True, ramp_safe=safe)


def describe_layout(
    layout: Layout, variants: Sequence[str], ramp_variant: str | None, seed: str
) -> str:
    """One sentence for ``abgate validate``: what the layout gives and what it gives up."""
    ramp = variants.index(ramp_variant) if ramp_variant is not None else None
    props = layout_properties(layout, len(variants), ramp)
    sdk = (
        f"a GrowthBook SDK with seed {seed!r} and these weights assigns every unit the same variant"
    )
    if ramp is None:
        return f"{layout} layout, no ramp variant: one hash with GrowthBook's ranges; {sdk}"
    if layout == "monotone":
        if props.agrees_with_growthbook:
            return (
                f"monotone layout: ramp safe, and with two variants and {ramp_variant} "
                f"listed last {sdk}"
            )
        return (
            f"monotone layout: ramp safe (as {ramp_variant} ramps, no unit moves between two "
            "other variants); gives up agreement with a GrowthBook SDK: the variants other "
            f"than {ramp_variant} are picked by a second hash, or {ramp_variant} is not listed "
            "last (assignment.layout: growthbook agrees instead)"
        )
    if props.ramp_safe:
        return (
            f"growthbook layout: {sdk}; ramp safe too, with at most one other variant on "
            f"each side of {ramp_variant}"
        )
    before, after = variants[:ramp], variants[ramp + 1 :]
    pairs = [f"{a} and {b}" for side in (before, after) for a, b in itertools.pairwise(side)]
    return (
        f"growthbook layout: {sdk}; gives up ramp safety: as {ramp_variant} ramps, units "
        f"move between {', '.join(pairs)} (assignment.layout: monotone keeps them put)"
    )


@dataclass(frozen=True, slots=True)
class Assignment:
    """The variant a unit is routed to, its index in the config and why it was chosen."""

    name: str
    index: int
    reason: AssignmentReason


@dataclass(frozen=True, slots=True)
class Assigner:
    """Assigns unit ids to the variants of one experiment; built once per config version.

    ``variants`` are names in config order and ``weights`` their percents,
    summing to 100. ``ramp_variant`` names the variant that ramps up (usually
    the canary); with ``layout`` ``monotone`` it selects the two-hash
    layout, with ``growthbook`` it changes nothing (one hash, GrowthBook's
    ranges). ``shadows`` are ``(name, sample_rate)`` pairs. ``hash_version`` 2
    is what the gateway uses; 1 exists for GrowthBook conformance.
    """

    seed: str
    variants: tuple[str, ...]
    weights: tuple[float, ...]
    _: KW_ONLY
    ramp_variant: str | None = None
    shadows: tuple[tuple[str, float], ...] = ()
    hash_version: int = 2
    layout: Layout = "monotone"
    _bucket: Callable[[str], int] = field(init=False, repr=False, compare=False)
    _by_bucket: tuple[Assignment, ...] = field(init=False, repr=False, compare=False)
    _ramp: Assignment | None = field(init=False, repr=False, compare=False)
    _ramp_from: int = field(init=False, repr=False, compare=False)
    _others_bucket: Callable[[str], int] = field(init=False, repr=False, compare=False)
    _others_by_bucket: tuple[Assignment, ...] = field(init=False, repr=False, compare=False)
    _sole_other: Assignment | None = field(init=False, repr=False, compare=False)
    _forced: dict[str, Assignment] = field(init=False, repr=False, compare=False)
    _shadow_rules: tuple[tuple[str, Callable[[str], int] | None, int], ...] = field(
        init=False, repr=False, compare=False
    )
    _all_shadows: tuple[str, ...] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._check()
        buckets = _BUCKETS[self.hash_version]
        by_hash = tuple(Assignment(name, i, "hash") for i, name in enumerate(self.variants))
        # Float rounding can only leave a gap at the top end of the ranges, so the
        # last variant with traffic is the safety net (never reached for valid weights).
        top = max((i for i, w in enumerate(self.weights) if w > 0), default=0)
        set_ = object.__setattr__  # frozen: the derived fields are set once, here
        set_(self, "_forced", {a.name: Assignment(a.name, a.index, "override") for a in by_hash})
        set_(self, "_bucket", _bucket_function(self.seed, self.hash_version))
        set_(self, "_others_bucket", _bucket_function(self.seed + _OTHERS_SEED_SUFFIX, 2))

        if self.ramp_variant is None or self.layout == "growthbook":
            ranges = bucket_ranges(len(self.variants), 1.0, [w / 100 for w in self.weights])
            set_(self, "_by_bucket", _table(ranges, buckets, by_hash, by_hash[top]))
            set_(self, "_ramp", None)
            set_(self, "_ramp_from", buckets)
            set_(self, "_others_by_bucket", ())
            set_(self, "_sole_other", None)
        else:
            ramp = self.variants.index(self.ramp_variant)
            others = [i for i in range(len(self.variants)) if i != ramp]
            total = sum(self.weights[i] for i in others)
            bounds: list[tuple[float, float]] = []
            cumulative = 0.0
            for i in others:
                start = cumulative
                cumulative += self.weights[i] / total if total > 0 else 0.0
                bounds.append((round(start, _BOUND_DECIMALS), round(cumulative, _BOUND_DECIMALS)))
            # With the ramp variant at 100 % the second hash is never consulted.
            fallback = max((i for i in others if self.weights[i] > 0), default=ramp)
            by_other = [by_hash[i] for i in others]
            set_(self, "_by_bucket", ())
            set_(self, "_ramp", by_hash[ramp])
            set_(self, "_ramp_from", _first_bucket_at(buckets, 1 - self.weights[ramp] / 100))
            table = _table(bounds, 10000, by_other, by_hash[fallback])
            set_(self, "_others_by_bucket", table)
            # One variant beside the ramp one (champion + canary): the second
            # hash could only name it, so it is not computed.
            set_(self, "_sole_other", table[0] if len(set(table)) == 1 else None)

        rules: list[tuple[str, Callable[[str], int] | None, int]] = []
        for name, rate in self.shadows:
            if rate >= 1:
                rules.append((name, None, 0))
            elif rate > 0:
                sampler = _bucket_function(self.seed + _SHADOW_SEED_SUFFIX + name, 2)
                rules.append((name, sampler, _first_bucket_at(10000, rate)))
        set_(self, "_shadow_rules", tuple(rules))
        unsampled = all(sampler is None for _, sampler, _ in rules)
        set_(self, "_all_shadows", tuple(name for name, _, _ in rules) if unsampled else None)

    def _check(self) -> None:
        if not self.variants:
            raise ValueError("an experiment needs at least one variant")
        if len(self.weights) != len(self.variants):
            raise ValueError(f"{len(self.variants)} variants but {len(self.weights)} weights")
        names = [*self.variants, *(name for name, _ in self.shadows)]
        if len(set(names)) != len(names):
            raise ValueError(f"variant and shadow names must be unique: {names}")
        if any(not math.isfinite(w) or w < 0 for w in self.weights):
            raise ValueError(f"weights must be finite and non-negative: {self.weights}")
        if abs(sum(self.weights) - 100) > _WEIGHT_SUM_TOLERANCE:
            raise ValueError(f"weights must sum to 100, got {sum(self.weights):.10g}")
        if self.ramp_variant is not None and self.ramp_variant not in self.variants:
            raise ValueError(f"ramp variant {self.ramp_variant!r} is not one of {self.variants}")
        if any(not 0 <= rate <= 1 for _, rate in self.shadows):
            raise ValueError(f"shadow sample rates must be in [0, 1]: {self.shadows}")
        if self.hash_version not in _BUCKETS:
            raise ValueError(f"unknown hash version {self.hash_version}; expected 1 or 2")
        if self.layout not in LAYOUTS:
            raise ValueError(f"unknown layout {self.layout!r}; expected one of {LAYOUTS}")

    @classmethod
    def from_config(cls, config: ExperimentConfig) -> Assigner:
        """The assigner of a validated experiment config."""
        ramp = config.ramp_variant
        return cls(
            config.seed,
            tuple(v.name for v in config.variants),
            tuple(v.weight for v in config.variants),
            ramp_variant=ramp.name if ramp is not None else None,
            shadows=tuple((s.name, s.sample_rate) for s in config.shadows),
            layout=config.assignment.layout,
        )

    def assign(self, unit_id: str, forced: str | None = None) -> Assignment:
        """The variant of ``unit_id``: the same one every time for the same config.

        ``forced`` (from an override header) picks any variant of the
        experiment by name, even one at weight 0 so that it can be tried
        before it gets traffic; names that are not variants are ignored.
        """
        if forced is not None:
            chosen = self._forced.get(forced)
            if chosen is not None:
                return chosen
        bucket = self._bucket(unit_id)
        if self._ramp is None:
            return self._by_bucket[bucket]
        if bucket >= self._ramp_from:
            return self._ramp
        if self._sole_other is not None:
            return self._sole_other
        return self._others_by_bucket[self._others_bucket(unit_id)]

    def hash_value(self, unit_id: str) -> float:
        """The unit's first hash in [0, 1), equal to ``hash_unit(seed, unit_id, hash_version)``."""
        return self._bucket(unit_id) / _BUCKETS[self.hash_version]

    def shadows_for(self, unit_id: str) -> tuple[str, ...]:
        """Names of the shadows that get a copy of this unit's request, in config order.

        Each shadow samples with its own hash, independent of the others and
        of the live assignment, so a unit is either always mirrored to a
        shadow or never, for a given sample rate.
        """
        if self._all_shadows is not None:
            return self._all_shadows
        return tuple(
            name
            for name, sampler, cut in self._shadow_rules
            if sampler is None or sampler(unit_id) < cut
        )


def _bucket_function(seed: str, version: int) -> Callable[[str], int]:
    """``unit -> integer bucket``, equal to ``hash_unit(seed, unit, version) * buckets``."""
    if version == 2:
        seed_state = fnv1a32(seed)

        def bucket_v2(unit: str) -> int:
            inner = fnv1a32_continue(seed_state, unit)
            return fnv1a32_continue(FNV_OFFSET_BASIS, str(inner)) % 10000

        return bucket_v2
    if version == 1:
        # v1 hashes unit + seed: nothing to precompute, the seed comes last.
        def bucket_v1(unit: str) -> int:
            return fnv1a32_continue(fnv1a32_continue(FNV_OFFSET_BASIS, unit), seed) % 1000

        return bucket_v1
    raise ValueError(f"unknown hash version {version}; expected 1 or 2")


def _first_bucket_at(buckets: int, threshold: float) -> int:
    """The first bucket whose hash value ``b / buckets`` is ``>= threshold`` (else ``buckets``).

    It evaluates the float comparison itself, so the integer bucket tests in
    ``assign`` agree exactly with comparing ``hash_unit`` values.
    """
    return next((b for b in range(buckets) if b / buckets >= threshold), buckets)


def _table(
    ranges: Sequence[tuple[float, float]],
    buckets: int,
    results: Sequence[Assignment],
    fallback: Assignment,
) -> tuple[Assignment, ...]:
    """``choose_variation`` evaluated once per bucket, so that ``assign`` only indexes a tuple."""
    table: list[Assignment] = []
    for bucket in range(buckets):
        index = choose_variation(bucket / buckets, ranges)
        table.append(results[index] if index >= 0 else fallback)
    return tuple(table)
