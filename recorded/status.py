"""``abgate status``: what each experiment routes and what it has recorded."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from analysis.decisions import analyze
from analysis.drift import ExperimentDrift
from analysis.epochs import Epoch
from analysis.reports.json_report import jsonable
from analysis.srm import SrmResult, epoch_sample_ratio_mismatch
from core.schema import LATENCY_BOUNDS_MS, ShadowStats, decode_epochs, decode_stats
from core.store import Store
from experiments.config import ExperimentConfig
from recorded.drift import load_experiment_drift
from recorded.reporting import assemble_experiment_data

__all__ = [
    "drift_lines",
    "experiment_status",
    "guardrail_lines",
    "ramp_line",
    "render_status",
    "shadow_lines",
    "srm_line",
]


def _p99(hist: tuple[int, ...]) -> float | None:
    total = sum(hist)
    if total == 0:
        return None
    rank = 0.99 * total
    seen = 0
    for index, count in enumerate(hist):
        seen += count
        if seen >= rank:
            return LATENCY_BOUNDS_MS[min(index, len(LATENCY_BOUNDS_MS) - 1)]
    return LATENCY_BOUNDS_MS[-1]


def experiment_status(store: Store, name: str) -> dict[str, Any]:
    """Config version, weights and recorded traffic of one experiment."""
    record = store.get_config(name)
    totals, epoch_records = store.recorded(name)
    recorded = decode_stats(totals)
    outcomes = recorded.variants()
    epochs = decode_epochs(epoch_records, recorded)
    srm = epoch_sample_ratio_mismatch(epochs)  # the threshold reports use (SPEC: 0.001)
    variants = record.config["variants"]
    total = sum(outcomes[v["name"]].requests for v in variants if v["name"] in outcomes)
    rows = []
    for v in variants:
        o = outcomes.get(v["name"])
        requests = o.requests if o else 0
        rows.append(
            {
                "variant": v["name"],
                "role": v["role"],
                "model_version": v["model_version"],
                "weight": v["weight"],
                "requests": requests,
                "observed_share": round(100.0 * requests / total, 2) if total else None,
                "errors": o.errors if o else 0,
                "error_rate": round(o.errors / requests, 4) if o and requests else None,
                "fallbacks": o.fallbacks if o else 0,
                "p99_latency_ms_upper_bound": _p99(o.latency.counts) if o and o.latency else None,
                "metrics": {
                    k: {"n": m.n, "mean": round(m.mean, 4) if m.n else None}
                    for k, m in (o.metrics.items() if o else ())
                },
            }
        )
    return {
        "experiment": name,
        "config_version": record.version,
        "paused": record.paused,
        "updated_at": record.updated_at,
        "updated_by": record.actor,
        "requests": total,
        "variants": rows,
        "srm": _srm(srm),
        **_checks(name, record.config, epochs, recorded.shadows),
        "drift": _drift(store, name, record.config),
        "ramp": _ramp(store.ramp_state(name)),
    }


def _srm(srm: SrmResult) -> dict[str, Any]:
    """The split check per epoch, as ``abgate report --format json`` words it."""
    return {
        "mismatch": srm.mismatch,
        "checked": srm.checked,
        "p_value": srm.p_value,
        "threshold": srm.threshold,
        "message": srm.message,
        "epochs": [
            {
                "version": c.epoch.version,
                "label": c.epoch.label,
                "weights": c.epoch.weights,
                "observed": dict(zip(c.result.arms, c.result.observed, strict=True)),
                "checked": c.adjusted_p_value is not None,
                "adjusted_p_value": c.adjusted_p_value,
                "mismatch": c.mismatch,
            }
            for c in srm.epochs
        ],
    }


def srm_line(srm: dict[str, Any]) -> str:
    """The split check in one line: the mismatch first, naming its epoch."""
    if srm["mismatch"]:
        return f"SAMPLE-RATIO MISMATCH: {srm['message']}"
    if not srm["checked"]:
        return f"split: not checked ({srm['message']})"
    return f"split: ok, {srm['message']}"


_RAMP_WORDS = {
    "running": "running",
    "promoted": "PROMOTED",
    "rolled_back": "ROLLED BACK (harm shown)",
    "expired": "EXPIRED (not shown good enough in time)",
}


def _ramp(state: dict[str, Any] | None) -> dict[str, Any] | None:
    """Where the experiment's ramp is, or how it ended (promoted, rolled back, expired)."""
    if state is None:
        return None
    history = state.get("history") or []
    weight = next((h.get("weight") for h in history if h.get("step") == state.get("step")), None)
    return {
        "status": state.get("status", "running"),
        "step": int(state.get("step", 0)) + 1,
        "weight": weight,
        "rule": state.get("rule"),
        "phase": state.get("phase", "exposed"),
    }


def ramp_line(ramp: dict[str, Any] | None) -> str | None:
    """One line on the ramp: its status, step and the rule that ended it."""
    if ramp is None:
        return None
    where = f"step {ramp['step']}" + (f" ({ramp['weight']:g} %)" if ramp["weight"] else "")
    if ramp.get("phase") == "shadow":
        where = "the shadow phase (mirrored, 0 % of users)"
    rule = f", rule {ramp['rule']}" if ramp.get("rule") else ""
    word = _RAMP_WORDS.get(ramp["status"], ramp["status"])
    return f"ramp: {word} at {where}{rule}"


def _checks(
    name: str, config: dict[str, Any], epochs: list[Epoch], shadows: Mapping[str, ShadowStats]
) -> dict[str, list[dict[str, Any]] | None]:
    """Every configured guardrail of each challenger, and every shadow's paired tests,
    checked on all recorded data as ``abgate report`` checks them; None for both when
    the stored config does not validate."""
    try:
        parsed = ExperimentConfig.model_validate(config)
    except ValidationError:
        return {"guardrails": None, "shadows": None}
    analysis = analyze(
        assemble_experiment_data(name, parsed, epochs, {}, duration_s=None, shadows=shadows)
    )
    guardrails = [
        {
            "variant": va.variant,
            "rule": g.rule,
            "metric": g.spec.metric,
            "limit": g.spec.limit,
            "threshold": g.spec.value,
            "status": g.status,
            "message": g.message,
        }
        for va in analysis.variants
        for g in va.guardrails
    ]
    return {"guardrails": guardrails, "shadows": [jsonable(a.as_dict()) for a in analysis.shadows]}


_SHADOW_WORDS = {
    "harm": "HARM SHOWN",
    "non_inferior": "non-inferior",
    "undecided": "undecided",
    "no_data": "no labels yet",
}


def shadow_lines(shadows: list[dict[str, Any]] | None) -> list[str]:
    """Each shadow's paired comparison with the live answers, one or two lines each."""
    if shadows is None:
        return ["shadows: not checked (the stored config does not validate)"]
    out = []
    for s in shadows:
        p, d = s["paired"], s["difference"]
        interval = ""
        if p["n"] and not d["message"]:
            low, high = (_points(v) for v in d["ci"])
            interval = f", shadow - live {_points(d['estimate'])} pts [{low}, {high}]"
        calls = s["calls"]
        out.append(
            f"shadow {s['shadow']} ({s['model_version']}) {s['metric']}: "
            f"{_SHADOW_WORDS.get(s['verdict'], s['verdict'])}; paired n={p['n']} (both "
            f"{p['both']}, live only {p['live_only']}, shadow only {p['shadow_only']}, neither "
            f"{p['neither']}){interval}; shed {calls['shed']}, late {calls['late']}"
        )
        out.append(f"  {s['reason']}")
    return out


def _points(value: Any) -> str:
    if isinstance(value, str):  # an open end, as JSON writes it
        return "-inf" if value.startswith("-") else "+inf"
    return f"{100 * value:+.2f}"


def guardrail_lines(guardrails: list[dict[str, Any]] | None) -> list[str]:
    """Each configured guardrail's result, one line each; or why there is none."""
    if guardrails is None:
        return ["guardrails: not checked (the stored config does not validate)"]
    if not guardrails:
        return ["guardrails: none configured"]
    words = {"failed": "FAILED", "ok": "ok", "not checked": "not checked yet"}
    return [
        f"guardrail {g['metric']} ({g['limit']} {g['threshold']:g}) {g['variant']}: "
        f"{words.get(g['status'], g['status'])}, {g['message']}"
        for g in guardrails
    ]


def _drift(store: Store, name: str, config: dict[str, Any]) -> dict[str, Any] | None:
    try:
        parsed = ExperimentConfig.model_validate(config)
    except ValidationError:  # a hand-edited stored config: the rest of the status still shows
        return None
    return load_experiment_drift(store, name, parsed).as_dict()


def drift_lines(drift: ExperimentDrift | dict[str, Any] | None) -> list[str]:
    """The drift verdict in a few lines: each alert with its PSI, or why there is none."""
    if drift is None:
        return ["drift: not checked (the stored config does not validate)"]
    d = drift.as_dict() if isinstance(drift, ExperimentDrift) else drift
    period = f", last {d['lookback_s']:g} s" if d.get("lookback_s") else ""
    rule = f"PSI > {d['psi_threshold']:g} on >= {d['min_samples']} samples{period}"
    if not d["variants"]:
        return ["drift: not checked (no training reference stored; `abgate apply` stores it)"]
    if not d["alert"]:
        samples = ", ".join(f"{v['variant']} {v['samples']}" for v in d["variants"])
        return [f"drift: none ({rule}; samples: {samples})"]
    out = [f"DRIFT ({rule}):"]
    for v in d["variants"]:
        for check in [*v["features"], *v["predictions"]]:
            if check["alert"]:
                p = check["p_value"]
                p_text = "p < 1e-10" if p < 1e-10 else f"p = {p:.2g}"
                out.append(
                    f"  {v['variant']} ({v['model_version']}): {check['name']} "
                    f"PSI {check['psi']:.3f}, chi-square {p_text}, n = {check['n']}"
                )
    return out


def render_status(store: Store, name: str | None, *, as_json: bool = False) -> str:
    """Text (or JSON) status of one or every experiment."""
    names = [name] if name else store.experiments()
    statuses = [experiment_status(store, n) for n in names]
    if as_json:
        return json.dumps(statuses, indent=2)
    if not statuses:
        return "no experiments stored (abgate apply FILE)"
    out = []
    for s in statuses:
        state = " PAUSED" if s["paused"] else ""
        out.append(
            f"{s['experiment']}: config v{s['config_version']}{state}, {s['requests']} requests "
            f"(updated {s['updated_at']} by {s['updated_by']})"
        )
        out.append(
            f"  {'VARIANT':<14} {'VERSION':<8} {'WEIGHT':>7} {'OBSERVED':>9} {'REQUESTS':>9} "
            f"{'ERR RATE':>9} {'FALLBACK':>9} {'P99 MS':>8}  METRICS"
        )
        for r in s["variants"]:
            observed = "-" if r["observed_share"] is None else f"{r['observed_share']:.1f}%"
            err = "-" if r["error_rate"] is None else f"{100 * r['error_rate']:.2f}%"
            p99 = (
                "-"
                if r["p99_latency_ms_upper_bound"] is None
                else f"{r['p99_latency_ms_upper_bound']:.1f}"
            )
            metrics = (
                ", ".join(f"{k} {m['mean']} (n={m['n']})" for k, m in r["metrics"].items()) or "-"
            )
            out.append(
                f"  {r['variant']:<14} {r['model_version']:<8} {r['weight']:>6g}% {observed:>9} "
                f"{r['requests']:>9} {err:>9} {r['fallbacks']:>9} {p99:>8}  {metrics}"
            )
        out.append("  " + srm_line(s["srm"]))
        out += ["  " + line for line in guardrail_lines(s["guardrails"])]
        out += ["  " + line for line in shadow_lines(s["shadows"])]
        out += ["  " + line for line in drift_lines(s["drift"])]
        ramp = ramp_line(s.get("ramp"))
        if ramp is not None:
            out.append("  " + ramp)
    return "\n".join(out)
