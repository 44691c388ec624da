"""The ramp's report: its ending, rule and evidence, its steps, then the analysis.

Pure: the controller gathers the steps' counts and the final decision; this
module renders them (Markdown, HTML, JSON) ahead of the usual analysis of the
whole ramp. Each step is a period of constant weights, so each gets its own
sample-ratio check; the whole ramp's totals span several splits and are not
checked against the last one (that would be a false alarm).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape
from typing import Any

from analysis.decisions import Analysis, analyze
from analysis.inputs import ExperimentData
from analysis.reports import report_html, report_json, report_markdown
from analysis.srm import SrmResult, sample_ratio_mismatch
from ramp.policy import NO_SRM

__all__ = ["RampReport", "StepRecord", "render_ramp_report", "step_record"]

_WORDS = {"promoted": "PROMOTED", "rolled_back": "ROLLED BACK", "expired": "EXPIRED"}
_WHOLE_RAMP_SRM = (
    "not checked on the whole ramp: the weights changed at every step, so its totals "
    "cannot match one split; each step's split is checked in the ramp section"
)


@dataclass(frozen=True)
class StepRecord:
    """One step of the ramp: its weights, how long it lasted, what it served."""

    index: int
    canary_weight: float
    weights: dict[str, float]
    started_at: float
    ended_at: float
    requests: dict[str, int]
    srm: SrmResult


def step_record(
    index: int,
    canary_weight: float,
    weights: Mapping[str, float],
    requests: Mapping[str, int],
    *,
    started_at: float,
    ended_at: float,
    threshold: float,
) -> StepRecord:
    """A step with its sample-ratio check among the arms it served."""
    live = {name: w for name, w in weights.items() if w > 0}
    srm = sample_ratio_mismatch(
        {name: int(requests.get(name, 0)) for name in live}, live, threshold=threshold
    )
    return StepRecord(
        index=index,
        canary_weight=canary_weight,
        weights=dict(weights),
        started_at=started_at,
        ended_at=ended_at,
        requests={name: int(n) for name, n in requests.items()},
        srm=srm,
    )


@dataclass(frozen=True)
class RampReport:
    """How a ramp ended and the steps it went through."""

    experiment: str
    variant: str
    status: str  # promoted | rolled_back | expired
    rule: str
    reason: str
    evidence: dict[str, Any]
    plan: dict[str, Any]
    steps: tuple[StepRecord, ...]
    shadow: dict[str, Any] | None = None  # how the shadow phase ended, when the plan had one

    @property
    def shadow_line(self) -> str | None:
        """One sentence on the shadow phase: its ending, paired counts and duration."""
        if not self.shadow:
            return None
        ev = self.shadow.get("evidence") or {}
        ended, started = self.shadow.get("ended_at", 0.0), self.shadow.get("started_at", 0.0)
        seconds = float(ended) - float(started)
        paired = ev.get("paired") or {}
        counts = ", ".join(f"{k} {v:,}" for k, v in paired.items()) or "none recorded"
        return (
            f"Shadow phase ({self.shadow.get('rule')}, {max(seconds, 0.0):.0f} s, 0 requests "
            f"served to users by {self.variant}): {self.shadow.get('reason')}; paired counts: "
            f"{counts}"
        )

    @property
    def headline(self) -> str:
        """``PROMOTED canary (promotion): reason``."""
        word = _WORDS.get(self.status, self.status.upper())
        return f"{word} {self.variant} ({self.rule}): {self.reason}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "experiment": self.experiment,
            "variant": self.variant,
            "ending": self.status,
            "rule": self.rule,
            "reason": self.reason,
            "evidence": self.evidence,
            "plan": self.plan,
            "shadow_phase": self.shadow,
            "steps": [
                {
                    "step": s.index + 1,
                    "canary_weight": s.canary_weight,
                    "weights": s.weights,
                    "started_at": s.started_at,
                    "seconds": s.ended_at - s.started_at,
                    "requests": s.requests,
                    "srm": {
                        "checked": s.srm.checked,
                        "mismatch": s.srm.mismatch,
                        "p_value": s.srm.p_value,
                        "message": s.srm.message,
                    },
                }
                for s in self.steps
            ],
        }


def _srm_word(srm: SrmResult) -> str:
    if srm.mismatch:
        return f"MISMATCH (p = {srm.p_value:.2g})"
    return f"ok (p = {srm.p_value:.3g})" if srm.checked else "too few to check"


def _evidence_lines(report: RampReport) -> list[tuple[str, str]]:
    ev = report.evidence
    rows: list[tuple[str, str]] = []
    if "estimate" in ev:
        low, high = (ev.get("ci") or [None, None])[:2]

        def pct(x: Any) -> str:
            return "-inf" if x is None else f"{x:+.2%}"

        # The shadow gate's difference is in accuracy points; the steps' lift is relative.
        label = "accuracy difference (paired)" if ev.get("phase") == "shadow" else "lift"
        rows.append((label, f"{ev['estimate']:+.2%} [{pct(low)}, {pct(high)}]"))
    for key in ("margin", "bound"):
        if key in ev:
            rows.append((key, f"{ev[key]:.2%}"))
    for key in (
        "test", "critical_z", "samples", "paired", "labels", "elapsed_s", "p_value",
        "p_harm", "p_non_inferiority", "promote_on",
    ):  # fmt: skip
        if key in ev and ev[key] is not None:
            value = ev[key]
            if isinstance(value, dict):
                text = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}"
                                 for k, v in value.items())  # fmt: skip
            else:
                text = f"{value:.3g}" if isinstance(value, float) else str(value)
            rows.append((key, text))
    return rows


def _step_rows(report: RampReport) -> list[tuple[str, ...]]:
    rows = []
    for s in report.steps:
        served = ", ".join(f"{name} {n:,}" for name, n in s.requests.items())
        rows.append(
            (
                str(s.index + 1),
                f"{s.canary_weight:g} %",
                f"{max(0.0, s.ended_at - s.started_at):.0f}",
                served or "-",
                _srm_word(s.srm),
            )
        )
    return rows


_STEP_HEADERS = ("step", "canary weight", "seconds", "requests", "SRM (this step)")


_STEPS_NOTE = (
    "Each step is a period of constant weights, checked for a sample-ratio mismatch on its "
    "own; the analysis below covers the whole ramp."
)
_NO_STEP_NOTE = (
    "No exposed step: the ramp ended in its shadow phase and the candidate served no user. "
    "The analysis below is of that phase: the live model's requests, and the shadow's "
    "answers paired with them."
)


def _markdown(report: RampReport) -> str:
    lines = [
        f"## Ramp of {report.variant} in {report.experiment}: {_WORDS.get(report.status, '')}",
        "",
        f"**{report.headline}**",
        "",
        f"Plan: {_plan_line(report.plan)}",
        "",
        *([report.shadow_line, ""] if report.shadow_line else []),
        "| evidence | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in _evidence_lines(report)),
        "",
        *(
            [
                "| " + " | ".join(_STEP_HEADERS) + " |",
                "|---:|---:|---:|---|---|",
                *("| " + " | ".join(row) + " |" for row in _step_rows(report)),
                "",
                _STEPS_NOTE,
            ]
            if report.steps
            else [_NO_STEP_NOTE]
        ),
        "",
    ]
    return "\n".join(line.replace("\n", " ") for line in lines)


def _plan_line(plan: Mapping[str, Any]) -> str:
    steps = " → ".join(f"{s:g}" for s in plan.get("served_steps", ()))
    shadow = plan.get("shadow")
    first = (
        f"shadow phase first (mirrored for {shadow.get('mirror', 1.0):.0%} of units, "
        f"{shadow.get('metric')} judged paired after {shadow.get('min_labels')} labels, max "
        f"{shadow.get('max_duration_s', 0):g}s, rollback on {shadow.get('rollback_on')}); then "
        if isinstance(shadow, Mapping)
        else ""
    )
    return (
        f"{first}serves {steps} %, promotion (100 %) on {plan.get('promote_on')}; margin "
        f"{plan.get('non_inferiority_margin', 0):.1%}; test {plan.get('test')}; "
        f"max {plan.get('max_duration_s', 0):g}s, then {plan.get('on_expiry')}"
    )


def _html(report: RampReport) -> str:
    ev_rows = "".join(
        f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in _evidence_lines(report)
    )
    head = "".join(f"<th>{escape(h)}</th>" for h in _STEP_HEADERS)
    step_rows = "".join(
        "<tr>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
        for row in _step_rows(report)
    )
    alert = ' role="alert"' if report.status != "promoted" else ""
    return (
        f'<section class="ramp ramp-{escape(report.status)}"{alert}>'
        f"<h1>Ramp of {escape(report.variant)}: {escape(_WORDS.get(report.status, ''))}</h1>"
        f"<p><strong>{escape(report.headline)}</strong></p>"
        f"<p>Plan: {escape(_plan_line(report.plan))}</p>"
        + (f"<p>{escape(report.shadow_line)}</p>" if report.shadow_line else "")
        + f"<table><tbody>{ev_rows}</tbody></table>"
        + (
            f"<h2>Steps</h2><table><thead><tr>{head}</tr></thead><tbody>{step_rows}</tbody>"
            f"</table><p>{escape(_STEPS_NOTE)}</p>"
            if report.steps
            else f"<p>{escape(_NO_STEP_NOTE)}</p>"
        )
        + "</section>"
    )


def _ramp_analysis(data: ExperimentData) -> Analysis:
    """The analysis of the whole ramp: its split checked per epoch (each step is one),
    or, on totals without epochs, not checked at all (the weights changed at each step)."""
    if data.epochs:
        return analyze(data)
    # Decide on the data as if the split were fine (it is checked per step), then
    # say so where the whole-ramp check would stand.
    analysis = analyze(dataclasses.replace(data, settings=dataclasses.replace(
        data.settings, srm_threshold=NO_SRM)))  # fmt: skip
    unchecked = SrmResult(
        arms=(),
        observed=(),
        expected=(),
        statistic=0.0,
        p_value=1.0,
        dof=0,
        threshold=data.settings.srm_threshold,
        checked=False,
        mismatch=False,
        message=_WHOLE_RAMP_SRM,
    )
    return dataclasses.replace(analysis, srm=unchecked)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def render_ramp_report(report: RampReport, data: ExperimentData) -> dict[str, str]:
    """``{"json": ..., "md": ..., "html": ...}``: the ramp section first, then the analysis."""
    analysis = _ramp_analysis(data)
    html = report_html(analysis).replace("<main>", "<main>" + _html(report), 1)
    html = html.replace(
        "</style>",
        ".ramp { margin: 0 0 24px; padding: 12px 16px; border: 1px solid #d0d7de; "
        "border-radius: 6px; } .ramp-rolled_back, .ramp-expired { border-color: #cf222e; } "
        ".ramp table { border-collapse: collapse; } .ramp th, .ramp td { text-align: left; "
        "padding: 2px 10px 2px 0; }</style>",
        1,
    )
    body = {"ramp": _finite(report.as_dict()), **report_json(analysis)}
    return {
        "json": json.dumps(body, indent=2, default=str) + "\n",
        "md": _markdown(report) + "\n" + report_markdown(analysis),
        "html": html,
    }
