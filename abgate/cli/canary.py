"""``abgate ramp``: walk a canary through its ramp plan, or describe the plan (``--dry-run``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from abgate.cli.configs import load_beside_stored
from abgate.cli.context import command_settings, redis_store
from core.errors import AbgateError

__all__ = ["cmd_ramp"]


def cmd_ramp(args: argparse.Namespace) -> int:
    from pathlib import Path

    from experiments.loader import load_experiment
    from model_workers.registry import ModelRegistry
    from ramp.controller import ACTOR, RampController
    from ramp.dry_run import describe_plan

    config = load_experiment(args.file)
    if config.ramp is None:
        raise AbgateError(f"{args.file}: no `ramp:` section to run")
    settings = command_settings("ramp")
    registry = ModelRegistry(settings.registry_dir)
    if args.dry_run:
        store = None
        if settings.redis_url:
            from core.store import Store

            store = Store(settings.redis_url, cluster=settings.redis_cluster)
        print(describe_plan(config, registry=registry, store=store, rate=args.rate, runs=args.runs))
        return 0
    store = redis_store(settings)
    config = load_beside_stored(args.file, store)  # the ramp stores it: as `apply` would

    def record_champion(variant: Any) -> None:
        try:
            registry.set_champion(
                config.model, variant.model_version, experiment=config.name, actor=ACTOR
            )
        except AbgateError as exc:  # a registry elsewhere (containers): the config is the record
            print(f"note: champion not recorded in the registry: {exc.message}", file=sys.stderr)

    out_dir = Path(args.out) if args.out else Path(args.file).resolve().parent
    controller = RampController(
        store, config, out_dir=out_dir, on_promote=record_champion, verbose=args.verbose
    )
    try:
        outcome = controller.run()
    except KeyboardInterrupt:
        print(
            f"\nramp of {config.name} paused; run `abgate ramp {args.file}` to resume",
            file=sys.stderr,
        )
        return 130
    return outcome.exit_code
