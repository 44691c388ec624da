"""The value every two-sample test returns, including the ones that could not run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

__all__ = ["Alternative", "DifferenceType", "TestResult"]

DifferenceType = Literal["absolute", "relative"]
"""``absolute``: treatment mean - control mean; ``relative``: that difference / control mean."""

Alternative = Literal["two-sided", "greater", "less"]
"""Alternative hypothesis about (treatment - control), in scipy's spelling."""


@dataclass(frozen=True)
class TestResult:
    """Outcome of comparing a treatment arm with the control arm.

    ``estimate`` is the lift (absolute or relative, see ``difference_type``),
    ``stddev`` its standard error, ``[ci_low, ci_high]`` the confidence interval
    (one end infinite for one-sided tests) and ``p_value`` the evidence against
    ``null``. ``dof`` is the Welch–Satterthwaite degrees of freedom (infinite for
    the normal-theory sequential test). When the data cannot support the test
    (an empty arm, one unit, zero variance, a zero control mean for a relative
    lift), ``error`` is set, ``message`` says why, and the numbers are the
    uninformative ones gbstats reports: estimate 0, interval [0, 0], p-value 1.
    ``test`` names the test that ran (``welch_t`` or ``sequential_cs``, with
    ``sequential_tuning`` = N*); ``control_mean``/``treatment_mean`` are the raw
    (unadjusted) arm means.
    """

    # Not a pytest test class, despite the name.
    __test__: ClassVar[bool] = False

    test: str
    difference_type: DifferenceType
    alternative: Alternative
    alpha: float
    estimate: float
    ci_low: float
    ci_high: float
    p_value: float
    stddev: float
    dof: float
    control_n: int
    treatment_n: int
    control_mean: float
    treatment_mean: float
    null: float = 0.0
    sequential_tuning: float | None = None
    message: str = ""
    error: bool = False

    @property
    def significant(self) -> bool:
        """Whether the test rejects ``null`` at level ``alpha`` (never when it errored)."""
        return not self.error and self.p_value < self.alpha

    @property
    def ci(self) -> tuple[float, float]:
        """The confidence interval as a pair."""
        return (self.ci_low, self.ci_high)

    def evidence(self) -> dict[str, Any]:
        """What a verdict quotes of this test: samples, means, estimate, interval, p."""
        return {
            "test": self.test,
            "samples": {"champion": self.control_n, "variant": self.treatment_n},
            "means": {"champion": self.control_mean, "variant": self.treatment_mean},
            "difference_type": self.difference_type,
            "estimate": self.estimate,
            "ci": [self.ci_low, self.ci_high],
            "p_value": self.p_value,
            "alpha": self.alpha,
            "message": self.message,
        }
