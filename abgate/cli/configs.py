"""``abgate validate | apply | promote | rollback``: experiment configs, checked and stored."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from abgate.cli.context import EXIT_ERROR, audit_actor, command_settings, redis_store
from core.errors import AbgateError

__all__ = [
    "cmd_apply",
    "cmd_promote",
    "cmd_rollback",
    "cmd_validate",
    "load_beside_stored",
    "ramp_gate_lines",
]


def cmd_validate(args: argparse.Namespace) -> int:
    from core.errors import ConfigError
    from experiments.loader import load_experiment_beside
    from experiments.namespaces import Neighbour
    from gateway.assignment import describe_layout

    failed = 0
    # Files validated together are checked against each other as if applied in this
    # order: a second experiment on one model is refused at its own lines.
    valid: list[Neighbour] = []
    for path in args.files:
        try:
            config = load_experiment_beside(path, valid)
        except ConfigError as exc:
            failed += 1
            for line in exc.problems:
                print(line, file=sys.stderr)
            continue
        valid.append(Neighbour(config, path))
        weights = ", ".join(f"{v.name} {v.weight:g}%" for v in config.variants)
        protocol = "" if config.protocol == "abgate" else f", protocol {config.protocol}"
        print(f"{path}: ok ({config.name}: {weights}{protocol})")
        ramp_variant = config.ramp_variant
        layout = describe_layout(
            config.assignment.layout,
            [v.name for v in config.variants],
            ramp_variant.name if ramp_variant is not None else None,
            config.seed,
        )
        print(f"  assignment: {layout}")
        if config.namespace is not None:
            ns = config.namespace
            print(
                f"  namespace: units in [{ns.start:g}, {ns.end:g}) of namespace {ns.id!r} "
                f"(GrowthBook's inNamespace); the rest of model {config.model} is for other "
                "experiments"
            )
        if config.ramp is not None:
            served = " → ".join(f"{s:g}" for s in config.ramp.served_steps)
            listed = (
                " (the 100 in steps is that promotion, not a step)"
                if len(config.ramp.served_steps) < len(config.ramp.steps)
                else ""
            )
            print(
                f"  ramp: the canary serves {served} %; 100 % is the promotion, given only "
                f"once the evidence holds{listed}"
            )
            for line in ramp_gate_lines(config):
                print(f"  {line}")
    return EXIT_ERROR if failed else 0


def ramp_gate_lines(config: Any) -> list[str]:
    """Which gate of a ramp plan judges which metric, on which requests."""
    plan = config.ramp
    primary = config.metrics.primary
    guards = ", ".join(g.name for g in config.metrics.guardrails) or "none"
    lines = []
    if plan.shadow is not None:
        phase = plan.shadow
        harm = "shown worse beyond the margin" if phase.rollback_on == "beyond_margin" else (
            "shown worse"
        )  # fmt: skip
        lines.append(
            f"shadow gate: {plan.variant} mirrored for {phase.mirror:.0%} of units, serving no "
            f"user; {phase.metric} (scored from labels) judged paired against the live answer "
            f"of the same requests: {harm} -> rollback, shown within "
            f"{plan.non_inferiority_margin:.1%} -> the steps begin"
        )
    lines.append(
        f"step gates: {primary.name} ({primary.source}) and the guardrails ({guards}) on the "
        "traffic the canary serves"
        + (
            " (where a reward caused by the answer a user saw is judged)"
            if plan.shadow is not None
            else ""
        )
    )
    return lines


def load_beside_stored(path: str, store: Any) -> Any:
    """The experiment file, refused at its own lines if it would shadow a stored one."""
    from pydantic import ValidationError

    from core.errors import NotFound
    from experiments.config import ExperimentConfig
    from experiments.loader import load_experiment_beside
    from experiments.namespaces import Neighbour

    stored = []
    for name in store.experiments():
        try:
            record = store.get_config(name)
            other = ExperimentConfig.model_validate(record.config)
        except (NotFound, ValidationError):  # deleted meanwhile, or not routed either
            continue
        stored.append(Neighbour(other, f"stored version {record.version}"))
    return load_experiment_beside(path, stored)


def cmd_apply(args: argparse.Namespace) -> int:
    from core.errors import NotFound
    from experiments.loader import load_experiment
    from model_workers.registry import ModelRegistry
    from recorded.drift import store_drift_references

    config = load_experiment(args.file)  # problems of the file alone, even without Redis
    settings = command_settings()
    store = redis_store(settings)
    config = load_beside_stored(args.file, store)
    if args.if_absent:
        try:
            current = store.get_config(config.name)
        except NotFound:
            pass
        else:
            print(f"{config.name}: version {current.version} is already stored; left as it is")
            return 0
    registry = ModelRegistry(args.registry or settings.registry_dir)
    for missing in store_drift_references(store, config, registry):
        print(f"note: no drift checks for it: {missing}", file=sys.stderr)
    version = store.put_config(
        config.name,
        config.model_dump(mode="json"),
        actor=audit_actor(),
        action="apply",
        reason=args.reason or f"applied {args.file}",
    )
    print(f"{config.name}: stored as version {version}; gateways follow within a second")
    return 0


def _experiment_config(store: Any, name: str) -> Any:
    from experiments.config import ExperimentConfig

    return ExperimentConfig.model_validate(store.get_config(name).config)


def cmd_promote(args: argparse.Namespace) -> int:
    from experiments import changes

    store = redis_store(command_settings())
    config = _experiment_config(store, args.experiment)
    variant = args.variant or (config.ramp_variant.name if config.ramp_variant else None)
    if variant is None:
        raise AbgateError("name the variant to promote with --variant")
    updated = changes.promote(config, variant)
    version = store.put_config(
        args.experiment,
        updated.model_dump(mode="json"),
        actor=audit_actor(),
        action="promote",
        reason=args.reason or "manual promotion",
        evidence={"variant": variant},
    )
    print(f"{args.experiment}: {variant} is the champion (config version {version})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from experiments import changes

    store = redis_store(command_settings())
    config = _experiment_config(store, args.experiment)
    updated = changes.rollback(config)
    version = store.put_config(
        args.experiment,
        updated.model_dump(mode="json"),
        actor=audit_actor(),
        action="rollback",
        reason=args.reason,
    )
    print(f"{args.experiment}: all traffic back to {config.champion.name} (version {version})")
    return 0
