"""The canary ramp plan: an optional shadow phase, the traffic steps, and what
promotes, rolls back or ends the ramp."""

from __future__ import annotations

import functools
from typing import Annotated, Literal

from pydantic import Field, model_validator

from experiments.fields import ConfigModel, Name, Number, Seconds
from experiments.problems import Loc, raise_problems

__all__ = ["PROMOTION_PERCENT", "Ramp", "RampTest", "ShadowPhase"]

RampTest = Literal["msprt", "confidence_sequence", "group_sequential"]

PROMOTION_PERCENT = 100.0
"""A step of 100 % in a plan is the promotion, never a weight the canary serves
before the promotion evidence holds."""


@functools.lru_cache(maxsize=64)
def _served_steps(steps: tuple[float, ...]) -> tuple[float, ...]:
    # Cached: the policy asks at every check, and simulations check a million times.
    served = tuple(float(s) for s in steps)
    return served[:-1] if served and served[-1] >= PROMOTION_PERCENT else served


MirrorShare = Annotated[float, Field(gt=0, le=1, strict=True, allow_inf_nan=False)]


class ShadowPhase(ConfigModel):
    """The ramp's first phase: the candidate is mirrored as a shadow, serving no user,
    and judged against the live model on the same labelled requests (a paired test).

    Only a label-scored proportion (a prediction is right or wrong once its label
    comes back) can be judged in shadow: both answers of a request are scored
    against one label. A reward or value is caused by the answer the user saw, so
    it stays with the exposed steps.
    """

    mirror: MirrorShare = Field(
        default=1.0,
        description="Share of units whose requests are mirrored to the candidate during the "
        "phase, in (0, 1] (the shadow's sample_rate).",
    )
    metric: Name | None = Field(
        default=None,
        description="The label-scored metric the gate judges; default and only choice today: "
        "the primary metric, when it is a proportion from labels (accuracy).",
    )
    min_labels: int = Field(
        default=300,
        ge=1,
        strict=True,
        description="Least labelled requests scored for both models before the gate decides.",
    )
    max_duration_s: float = Field(
        default=3600,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="Longest the phase may run; a candidate not shown non-inferior by then "
        "expires (the plan's on_expiry).",
    )
    rollback_on: Literal["worse", "beyond_margin"] = Field(
        default="worse",
        description="What rolls the candidate back before any user sees it: worse (shown "
        "less accurate than the live model at all) or beyond_margin (shown worse by more "
        "than non_inferiority_margin, as the exposed steps' harm rule).",
    )


class Ramp(ConfigModel):
    """The canary ramp plan: traffic steps, the evidence each larger step must buy,
    and what promotes, rolls back or ends the ramp."""

    variant: Name | None = Field(
        default=None,
        description="Variant to ramp (not the champion); default: the variant with role canary.",
    )
    shadow: ShadowPhase | None = Field(
        default=None,
        description="A shadow phase before the first step: the candidate serves 0 % while "
        "mirrored, and a paired test on labelled requests decides whether users see it.",
    )
    steps: tuple[Number, ...] = Field(
        min_length=1,
        description=(
            "Strictly increasing percents of traffic the canary serves, each in (0, 100). "
            "A last step of 100 is accepted and means the promotion: the canary gets 100 % "
            "only when it is promoted, never as a step before the evidence holds."
        ),
    )
    min_duration_s: Seconds = Field(default=30, description="Least time spent at each step.")
    min_samples: int = Field(
        default=200, ge=0, strict=True, description="Least canary requests at each step."
    )
    check_interval_s: float = Field(
        default=5, gt=0, strict=True, allow_inf_nan=False, description="Time between checks."
    )
    max_duration_s: float = Field(
        default=3600,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description=(
            "Longest the whole ramp may run; a canary not shown good enough by then "
            "expires (see on_expiry)."
        ),
    )
    on_expiry: Literal["rollback", "hold"] = Field(
        default="rollback",
        description=(
            "What an expired ramp does: rollback (canary to 0 %) or hold (weights stay "
            "where they are for a person to decide with `abgate promote` or `rollback`)."
        ),
    )
    on_srm: Literal["hold", "rollback"] = Field(
        default="hold", description="What a sample-ratio mismatch does to the ramp."
    )
    non_inferiority_margin: float = Field(
        default=0.01,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description=(
            "Largest relative drop of the primary metric that still counts as not worse: "
            "a canary shown worse by more is rolled back, and promotion needs evidence "
            "that it is not."
        ),
    )
    promote_on: Literal["non_inferiority", "superiority", "no_harm"] = Field(
        default="non_inferiority",
        description=(
            "Evidence the promotion needs at the last served step: non_inferiority (the "
            "primary metric shown within the margin of the champion's), superiority "
            "(shown better), or no_harm (the step's minimum time and samples, no harm "
            "shown: weak, an underpowered ramp promotes a worse model)."
        ),
    )
    test: RampTest = Field(
        default="confidence_sequence",
        description=(
            "How the primary metric is monitored: confidence_sequence (always valid, tuned "
            "to statistics.tuning_n), msprt (a mixture sequential test scaled to the "
            "margin) or group_sequential (alpha spent over 10 planned looks, the last one "
            "final). docs/ramp.md compares them."
        ),
    )

    @property
    def served_steps(self) -> tuple[float, ...]:
        """The weights the canary serves before promotion: ``steps`` without a final 100."""
        return _served_steps(self.steps)

    @model_validator(mode="after")
    def _check(self) -> Ramp:
        problems: list[tuple[Loc, str]] = []
        for i, step in enumerate(self.steps):
            if not 0 < step <= PROMOTION_PERCENT:
                problems.append((("steps", i), f"must be a percent in (0, 100], got {step:g}"))
            elif i and step <= self.steps[i - 1]:
                problems.append(
                    (
                        ("steps", i),
                        f"steps must increase strictly: {self.steps[i - 1]:g} then {step:g}",
                    )
                )
        if not problems and not self.served_steps:
            problems.append(
                (
                    ("steps",),
                    "needs a step below 100: 100 is the promotion, not a step the canary "
                    "serves first",
                )
            )
        if self.max_duration_s < self.min_duration_s:
            problems.append(
                (("max_duration_s",), f"must be at least min_duration_s ({self.min_duration_s:g})")
            )
        raise_problems("Ramp", problems)
        return self
