"""What an experiment measures and how it is tested: the primary metric, the
guardrails and the statistics settings."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from experiments.fields import ConfigModel, Flag, Name
from experiments.problems import raise_problems

__all__ = [
    "LABEL_METRIC",
    "Guardrail",
    "GuardrailMetric",
    "Metrics",
    "PrimaryMetric",
    "Statistics",
]

GuardrailMetric = Literal[
    "error_rate", "mean_latency_ms", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms"
]

LABEL_METRIC = "accuracy"
"""The metric label feedback is recorded as when the primary metric has another source
(the gateway's feedback kinds, ``gateway/live.py``)."""


class PrimaryMetric(ConfigModel):
    """The metric a promotion is decided on."""

    name: Name = Field(description="Metric name in reports, e.g. accuracy.")
    kind: Literal["proportion", "mean"] = Field(
        default="proportion", description="proportion (0/1 outcomes) or mean (any number)."
    )
    source: Literal["label", "reward", "value"] = Field(
        default="label",
        description="Feedback field it is computed from: label (1 when it equals the "
        "prediction), reward or value (the number itself).",
    )
    direction: Literal["increase", "decrease"] = Field(
        default="increase", description="Which direction is better."
    )
    difference: Literal["relative", "absolute"] | None = Field(
        default=None,
        description="How the effect is reported: relative ((new - champion) / champion) or "
        "absolute (new - champion, in the metric's units). Verdicts always test the "
        "difference. Default: relative for kind proportion, absolute for kind mean; a "
        "relative lift is refused (absolute reported, with the reason) when the champion's "
        "mean is <= 0 or its interval includes 0.",
    )


class Guardrail(ConfigModel):
    """A metric the new version must not make worse by more than a threshold.

    Each limit set is checked on its own (any one exceeded rolls back); see
    ``analysis.guardrails`` for how each metric is tested.
    """

    name: GuardrailMetric = Field(
        description="Operational metric the gateway records: error_rate (errors per request), "
        "mean_latency_ms, or the p50/p95/p99 of the latency histogram."
    )
    max_relative_increase: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="(new - champion) / champion limit, e.g. 0.2 for +20 %.",
    )
    max_absolute_increase: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="new - champion limit, in the metric's units (a rate, or ms).",
    )
    max_ratio: float | None = Field(
        default=None,
        ge=1,
        allow_inf_nan=False,
        description="new / champion limit (>= 1); the same as max_relative_increase = ratio - 1.",
    )

    @model_validator(mode="after")
    def _check(self) -> Guardrail:
        limits = (self.max_relative_increase, self.max_absolute_increase, self.max_ratio)
        if all(limit is None for limit in limits):
            raise_problems(
                "Guardrail",
                [((), "set max_relative_increase, max_absolute_increase or max_ratio")],
            )
        if self.max_relative_increase is not None and self.max_ratio is not None:
            # Two words for one limit (ratio = 1 + relative increase): which one meant it?
            raise_problems(
                "Guardrail",
                [
                    (
                        ("max_ratio",),
                        f"says the same as max_relative_increase (max_ratio = 1 + "
                        f"max_relative_increase); set only one, e.g. max_ratio: "
                        f"{1 + self.max_relative_increase:g}",
                    )
                ],
            )
        return self


def _default_guardrails() -> tuple[Guardrail, ...]:
    return (
        Guardrail(name="error_rate", max_absolute_increase=0.01),
        Guardrail(name="p99_latency_ms", max_ratio=1.5),
    )


class Metrics(ConfigModel):
    """The primary metric and the guardrails."""

    primary: PrimaryMetric = Field(
        default_factory=lambda: PrimaryMetric(name="accuracy"),
        description="Decides promotion; default: accuracy from labels.",
    )
    guardrails: tuple[Guardrail, ...] = Field(
        default_factory=_default_guardrails,
        description="Checked at every ramp step; default: error rate +0.01, p99 latency x1.5.",
    )

    @model_validator(mode="after")
    def _check(self) -> Metrics:
        names = [g.name for g in self.guardrails]
        raise_problems(
            "Metrics",
            [
                (("guardrails", i, "name"), f"duplicate guardrail {name!r}")
                for i, name in enumerate(names)
                if name in names[:i]
            ],
        )
        return self


class Statistics(ConfigModel):
    """How the analysis tests the primary metric."""

    alpha: float = Field(
        default=0.05, gt=0, le=0.5, strict=True, description="False-positive rate per test."
    )
    test: Literal["welch"] = Field(
        default="welch", description="Welch's t-test on sufficient statistics."
    )
    sequential: Flag = Field(
        default=True, description="Confidence sequences that stay valid under peeking."
    )
    tuning_n: int = Field(
        default=5000, gt=0, strict=True, description="Planned samples per arm (tunes sequential)."
    )
    min_samples: int = Field(
        default=200, ge=1, strict=True, description="Samples per arm before any verdict."
    )
    mde: float = Field(
        default=0.02,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="Minimum detectable effect on the primary metric's scale: relative to the "
        "champion (0.02 = 2 %), or in the metric's units when it reports absolute differences.",
    )
    power: float = Field(
        default=0.8, gt=0, lt=1, strict=True, description="Power wanted at the MDE."
    )
    correction: Literal["holm", "benjamini_hochberg", "none"] = Field(
        default="holm", description="Multiple-testing correction across metrics and variants."
    )
    shadow_margin: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        strict=True,
        allow_inf_nan=False,
        description="Non-inferiority margin of the shadows' paired test, in accuracy points "
        "(0.01 = one point): a shadow is shown non-inferior when the lower end of the "
        "difference shadow - live is above -margin.",
    )
    drift_psi_threshold: float = Field(
        default=0.2,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="PSI above which a feature or the predictions count as drifted.",
    )
    drift_min_samples: int = Field(
        default=200,
        ge=1,
        strict=True,
        description="Sampled requests per variant before a drift alert can fire.",
    )
    drift_lookback_s: int = Field(
        default=3600,
        ge=1,
        strict=True,
        description=(
            "Drift is judged on the stats windows that started in the last this many seconds, "
            "so an alert follows the traffic of now, not the experiment's whole history."
        ),
    )
