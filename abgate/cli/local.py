"""``abgate up | loadgen | demo``: the whole stack on this machine, traffic for it, and
the main job end to end."""

from __future__ import annotations

import argparse

from abgate.cli.context import EXIT_ERROR, command_settings
from core.errors import AbgateError

__all__ = ["cmd_demo", "cmd_loadgen", "cmd_up"]


def cmd_up(args: argparse.Namespace) -> int:
    from pathlib import Path

    from abgate.up import run_up

    return run_up(command_settings("up"), Path(args.config), args.port)


def _parse_shift(values: list[str]) -> dict[int, float]:
    from model_workers.training import N_FEATURES

    names = [f"f{i}" for i in range(N_FEATURES)]
    shift: dict[int, float] = {}
    for value in values:
        feature, _, delta = value.partition(":")
        index = names.index(feature) if feature in names else None
        if index is None and feature.isdigit() and int(feature) < N_FEATURES:
            index = int(feature)
        try:
            amount = float(delta)
        except ValueError:
            index = None
        if index is None:
            raise AbgateError(
                f"--shift takes FEATURE:DELTA with FEATURE one of 0-{N_FEATURES - 1} or "
                f"f0-f{N_FEATURES - 1} (e.g. f3:1.5), not {value!r}"
            )
        shift[index] = shift.get(index, 0.0) + amount
    return shift


def cmd_loadgen(args: argparse.Namespace) -> int:
    import asyncio

    from abgate.loadgen import run_load

    if args.requests is not None and args.requests < 1:
        raise AbgateError(f"--requests must be at least 1, got {args.requests}")
    result = asyncio.run(
        run_load(
            args.url.rstrip("/"),
            rate=args.rate,
            duration_s=args.duration,
            concurrency=args.concurrency,
            feedback_share=args.feedback,
            shift=_parse_shift(args.shift),
            seed=args.seed,
            model=args.model,
            max_requests=args.requests,
        )
    )
    print(result.summary())
    return 0 if result.ok else EXIT_ERROR


def cmd_demo(args: argparse.Namespace) -> int:
    from abgate.demo import run_demo

    return run_demo(command_settings("demo"), registry_dir=args.registry)
