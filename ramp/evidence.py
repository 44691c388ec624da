"""The ramp's evidence on the primary metric: bounds on the canary's lift at every check.

Three designs give the critical value (on the z scale) the bounds are drawn at;
the bounds themselves come from ``analysis.lift_bounds`` (likelihood-ratio
bounds for proportions, so an A/A ramp errs as often towards "better" as
towards "worse"):

- ``msprt``: a normal-mixture sequential probability ratio test (Johari et al.
  2017) whose mixture has scale ``tau`` on the lift itself, here the margin,
  so it is sharpest where the ramp's questions are (is the harm below 1-2x
  the margin?) whatever the traffic split;
- ``confidence_sequence``: the asymptotic confidence sequence the analysis
  uses (``analysis.sequential``), tuned to ``statistics.tuning_n`` units;
- ``group_sequential``: Lan-DeMets alpha spending over ``looks`` planned looks
  at equal steps of information up to the information that shows an equal
  canary non-inferior with the configured power; the bounds count only at a
  look (the policy takes each look once), and the last look is final.

Everything is vectorised: a simulation passes arrays of runs, a controller
0-d arrays, and both get the same numbers from the same code.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from analysis._distributions import normal_ppf
from analysis.group_sequential import group_sequential_bounds
from analysis.inputs import AnalysisSettings
from analysis.lift_bounds import null_variance, proportion_lift_bounds, wald_lift_bounds
from analysis.sequential import mixture_critical, sequential_rho
from analysis.sufficient import FloatArray, Moments
from experiments.ramp_plan import Ramp, RampTest

__all__ = [
    "EvidenceArrays",
    "EvidenceDesign",
    "PrimaryEvidence",
    "evidence_arrays",
    "evidence_design",
    "primary_evidence",
]

GST_LOOKS = 10
"""Planned looks of the group-sequential design (equal steps of information)."""
GST_SPENDING = 2.0
"""alpha·t^2: little alpha spent early, as spotify/confidence does by default."""
MSPRT_TAU_MARGINS = 1.0
"""The mSPRT mixture's scale, in margins."""


@dataclass(frozen=True)
class EvidenceDesign:
    """How the primary metric is monitored: what the critical value is at each check."""

    test: RampTest
    alpha: float
    min_samples: int
    tuning: float = 5000.0  # confidence_sequence: N*, units in both arms
    tau: float = 0.01  # msprt: mixture scale on the relative lift
    max_information: float = math.inf  # group_sequential: 1/variance at the last look
    looks: int = GST_LOOKS
    spending: float = GST_SPENDING

    def look_bounds(self) -> tuple[float, ...]:
        """One-sided z boundaries at the planned looks (group_sequential only)."""
        return _gst_bounds(self.looks, self.alpha, self.spending)


@functools.lru_cache(maxsize=32)
def _gst_bounds(looks: int, alpha: float, spending: float) -> tuple[float, ...]:
    # Two-sided at 2·alpha: symmetric boundaries, alpha on each side.
    fractions = [k / looks for k in range(1, looks + 1)]
    return group_sequential_bounds(fractions, alpha=2 * alpha, rho=spending).z_bounds


def evidence_design(
    plan: Ramp, settings: AnalysisSettings, *, test: RampTest | None = None, **overrides: Any
) -> EvidenceDesign:
    """The design of ``plan`` (or of ``test``), with its constants from plan and settings."""
    chosen: RampTest = test or plan.test
    design = EvidenceDesign(
        test=chosen,
        alpha=settings.alpha,
        min_samples=settings.min_samples,
        tuning=float(settings.tuning_n),
        tau=MSPRT_TAU_MARGINS * plan.non_inferiority_margin,
    )
    if chosen == "group_sequential":
        final = design.look_bounds()[-1]
        beta = 1.0 - settings.power
        needed = (final + float(normal_ppf(1.0 - beta))) / plan.non_inferiority_margin
        design = replace(design, max_information=needed**2)
    return replace(design, **overrides) if overrides else design


@dataclass(frozen=True)
class EvidenceArrays:
    """Lift, bounds and design state per run (arrays of one shape)."""

    estimate: FloatArray
    low: FloatArray
    high: FloatArray
    critical: FloatArray
    information: FloatArray
    look: npt.NDArray[np.int64]  # planned looks passed (group_sequential), else 0


def evidence_arrays(
    design: EvidenceDesign, champion: Moments, canary: Moments, *, proportion: bool
) -> EvidenceArrays:
    """Bounds on the canary's relative lift over the champion, valid under monitoring."""
    n_c, n_t = np.asarray(champion.n, float), np.asarray(canary.n, float)
    variance = null_variance(canary, champion, proportion=proportion)
    information = np.where(np.isfinite(variance), 1.0 / variance, 0.0)
    look = np.zeros(np.shape(information), dtype=np.int64)
    if design.test == "confidence_sequence":
        rho = sequential_rho(design.alpha, design.tuning, one_sided=True)
        critical = mixture_critical((n_c + n_t) * rho**2, alpha=design.alpha, one_sided=True)
    elif design.test == "msprt":
        reach = design.tau**2 * information
        critical = mixture_critical(reach, alpha=design.alpha, one_sided=True)
    else:
        bounds = np.asarray((math.inf, *design.look_bounds()))
        look = np.minimum(
            np.floor(information / design.max_information * design.looks + 1e-9), design.looks
        ).astype(np.int64)
        critical = bounds[look]
    enough = (n_c >= design.min_samples) & (n_t >= design.min_samples) & (information > 0)
    critical = np.where(enough, critical, np.inf)
    bounds_of = proportion_lift_bounds if proportion else wald_lift_bounds
    lift = bounds_of(canary, champion, critical)
    return EvidenceArrays(
        estimate=np.asarray(lift.estimate, float),
        low=np.asarray(lift.low, float),
        high=np.asarray(lift.high, float),
        critical=np.asarray(critical, float),
        information=information,
        look=look,
    )


@dataclass(frozen=True)
class PrimaryEvidence:
    """The canary's lift on the primary metric with its bounds, as the policy reads it.

    ``estimate``, ``low`` and ``high`` are the relative lift (canary - champion) /
    champion; for a metric where lower is better, harm is a positive lift.
    """

    test: RampTest
    higher_is_better: bool
    estimate: float
    low: float
    high: float
    critical: float
    samples: dict[str, int]
    information_fraction: float | None = None  # group_sequential only
    look: int | None = None  # group_sequential: planned looks passed
    looks: int | None = None  # group_sequential: planned looks in all

    def excludes_harm_beyond(self, bound: float) -> bool:
        """Do the data rule out that the canary is worse by more than ``bound``?"""
        return self.low > -bound if self.higher_is_better else self.high < bound

    def shows_harm_beyond(self, bound: float) -> bool:
        """Is the canary shown to be worse by more than ``bound``?"""
        return self.high < -bound if self.higher_is_better else self.low > bound

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (infinite bounds as None)."""

        def finite(x: float) -> float | None:
            return x if math.isfinite(x) else None

        return {
            "test": self.test,
            "estimate": self.estimate,
            "ci": [finite(self.low), finite(self.high)],
            "critical_z": finite(self.critical),
            "samples": self.samples,
            **(
                {"look": self.look, "looks": self.looks, "information": self.information_fraction}
                if self.look is not None
                else {}
            ),
        }


def primary_evidence(
    design: EvidenceDesign,
    champion: Moments,
    canary: Moments,
    *,
    proportion: bool,
    higher_is_better: bool,
) -> PrimaryEvidence:
    """``evidence_arrays`` for one ramp, as the policy's input."""
    arrays = evidence_arrays(design, champion, canary, proportion=proportion)
    return evidence_at(design, arrays, 0 if arrays.estimate.ndim else (), champion, canary,
                       higher_is_better=higher_is_better)  # fmt: skip


def evidence_at(
    design: EvidenceDesign,
    arrays: EvidenceArrays,
    index: Any,
    champion: Moments,
    canary: Moments,
    *,
    higher_is_better: bool,
) -> PrimaryEvidence:
    """The evidence of run ``index`` of ``arrays``."""
    gst = design.test == "group_sequential"
    information = float(arrays.information[index])
    return PrimaryEvidence(
        test=design.test,
        higher_is_better=higher_is_better,
        estimate=float(arrays.estimate[index]),
        low=float(arrays.low[index]),
        high=float(arrays.high[index]),
        critical=float(arrays.critical[index]),
        samples={
            "champion": int(np.asarray(champion.n)[index]),
            "canary": int(np.asarray(canary.n)[index]),
        },
        information_fraction=information / design.max_information if gst else None,
        look=int(arrays.look[index]) if gst else None,
        looks=design.looks if gst else None,
    )
