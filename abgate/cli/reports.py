"""``abgate status | report | analyze | simulate``: what was recorded, and what it means."""

from __future__ import annotations

import argparse
import sys

from abgate.cli.context import command_settings, redis_store
from core.errors import AbgateError

__all__ = ["cmd_analyze", "cmd_report", "cmd_simulate", "cmd_status"]


def cmd_status(args: argparse.Namespace) -> int:
    from recorded.status import render_status

    store = redis_store(command_settings())
    print(render_status(store, args.experiment, as_json=args.json))
    return 0


def _emit(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    from pathlib import Path

    try:
        Path(out).write_text(text)
    except OSError as exc:
        raise AbgateError(f"cannot write {out}: {exc.strerror or exc}") from exc
    print(f"wrote {out}")


def cmd_analyze(args: argparse.Namespace) -> int:
    import json as json_module

    from analysis.inputs import InputError, experiment_from_json
    from analysis.report import render

    try:
        with open(args.file, "rb") as handle:
            raw = json_module.load(handle)
    except OSError as exc:
        raise AbgateError(f"cannot read {args.file}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise AbgateError(f"{args.file}: not valid JSON: {exc}") from exc
    try:
        data = experiment_from_json(raw)
    except InputError as exc:
        raise AbgateError(f"{args.file}: {exc}") from exc
    _emit(render(data, args.format), args.out)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from recorded.reporting import experiment_data, render

    store = redis_store(command_settings())
    _emit(render(experiment_data(store, args.experiment), args.format), args.out)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from analysis.simulation import calibrate

    if args.experiments < 10 or args.looks < 1 or args.units_per_look < 2:
        raise AbgateError("need --experiments >= 10, --looks >= 1, --units-per-look >= 2")
    result = calibrate(
        args.lift,
        experiments=args.experiments,
        looks=args.looks,
        units_per_look=args.units_per_look,
        kind=args.kind,
        mean=args.mean,
        alpha=args.alpha,
        seed=args.seed,
    )
    print(
        f"{args.experiments} simulated experiments x {args.looks} looks x "
        f"{args.units_per_look} units per arm per look, alpha {args.alpha:g}, seed {args.seed}"
    )
    power_label = f"power at {args.lift:+.0%}"
    print(f"{'procedure':<28} {'A/A false positives':>20} {power_label:>16}")
    for label, attr in (
        ("fixed horizon (one look)", "fixed_horizon"),
        ("naive test at every look", "naive_peeking"),
        ("sequential (conf. sequence)", "sequential"),
    ):
        print(
            f"{label:<28} {getattr(result.false_positive, attr):>20.4f} "
            f"{getattr(result.power, attr):>16.4f}"
        )
    return 0
