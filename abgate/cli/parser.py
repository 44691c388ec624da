"""The command-line grammar of ``abgate``: every command, its flags and its handler."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any, NoReturn

from abgate.cli.canary import cmd_ramp
from abgate.cli.configs import cmd_apply, cmd_promote, cmd_rollback, cmd_validate
from abgate.cli.local import cmd_demo, cmd_loadgen, cmd_up
from abgate.cli.models import cmd_models_import, cmd_models_list, cmd_models_show, cmd_train
from abgate.cli.reports import cmd_analyze, cmd_report, cmd_simulate, cmd_status
from abgate.cli.serving import cmd_gateway, cmd_worker

__all__ = ["EXIT_USAGE", "build_parser", "installed_version"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and value < float("inf")):
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text!r}")
    return value


def _registry_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--registry",
        default=None,
        help="model registry root (default: $ABGATE_REGISTRY_DIR or models)",
    )


def installed_version() -> str:
    """The version of the installed ``abgate`` distribution (what pip reports)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("abgate")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


class _VersionAction(argparse.Action):
    """``--version``: looks the version up only when asked (metadata scans take time)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="print the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any) -> NoReturn:
        print(f"{parser.prog} {installed_version()}")
        parser.exit(0)


def build_parser() -> argparse.ArgumentParser:
    """The full command-line grammar."""
    parser = _Parser(
        prog="abgate",
        description="A/B and canary traffic-routing gateway for machine-learning models.",
    )
    # Only before a command: `abgate train --version v2` names a model version.
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    train = sub.add_parser("train", help="train a model version and register it")
    train.add_argument("--model", default="demo", help="model name (default: demo)")
    train.add_argument("--version", required=True, help="version name, e.g. v2")
    train.add_argument(
        "--algorithm",
        default="gradient_boosting",
        choices=["gradient_boosting", "random_forest", "logistic_regression"],
    )
    train.add_argument("--n-estimators", type=int, default=50, help="trees / boosting rounds")
    train.add_argument("--max-depth", type=int, default=3, help="tree depth")
    train.add_argument("--learning-rate", type=float, default=0.1, help="boosting learning rate")
    train.add_argument("--seed", type=int, default=0, help="estimator seed (the data is fixed)")
    train.add_argument(
        "--label-noise", type=float, default=0.0, help="share of positive labels flipped to 0"
    )
    train.add_argument("--n-samples", type=int, default=20_000, help="rows of the demo task")
    _registry_flag(train)
    train.set_defaults(handler=cmd_train)

    models = sub.add_parser("models", help="list, show or import registered model versions")
    models_sub = models.add_subparsers(
        dest="models_command", metavar="ACTION", parser_class=_Parser
    )
    models_sub.required = True
    listing = models_sub.add_parser("list", help="every model version with its holdout metrics")
    _registry_flag(listing)
    listing.set_defaults(handler=cmd_models_list)
    show = models_sub.add_parser("show", help="the metadata of one version")
    show.add_argument("model")
    show.add_argument("version")
    show.add_argument(
        "--full", action="store_true", help="include the reference distributions (drift checks)"
    )
    _registry_flag(show)
    show.set_defaults(handler=cmd_models_show)
    imported = models_sub.add_parser(
        "import",
        help="add an MLflow scikit-learn model (saved with skops) to the registry",
        description="Import an MLflow model directory, or models:/NAME/VERSION of a local "
        "tracking store, into the registry. Only models logged with "
        "serialization_format='skops' are taken: pickle runs code when loaded.",
    )
    imported.add_argument("source", help="an MLflow model directory or models:/NAME/VERSION")
    imported.add_argument("--model", required=True, help="model name in the registry")
    imported.add_argument("--version", required=True, help="version name in the registry")
    imported.add_argument(
        "--tracking-uri",
        default=None,
        help="for models:/ sources: sqlite:///PATH or a file store directory "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db as MLflow)",
    )
    _registry_flag(imported)
    imported.set_defaults(handler=cmd_models_import)

    worker = sub.add_parser("worker", help="serve one model version over HTTP")
    worker.add_argument("--model", default="demo")
    worker.add_argument("--version", required=True)
    worker.add_argument("--port", type=int, required=True)
    worker.add_argument("--host", default=None, help="bind address (default: $ABGATE_HOST)")
    _registry_flag(worker)
    worker.set_defaults(handler=cmd_worker)

    validate = sub.add_parser("validate", help="check experiment YAML files")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(handler=cmd_validate)

    apply = sub.add_parser("apply", help="store an experiment config; running gateways follow")
    apply.add_argument("file", metavar="FILE")
    apply.add_argument("--reason", default=None, help="why (goes to the audit log)")
    apply.add_argument(
        "--if-absent",
        action="store_true",
        help="store only if Redis holds no config of this experiment yet (one-shot start-up "
        "jobs: a restart must not undo weights a ramp or an operator has changed)",
    )
    _registry_flag(apply)
    apply.set_defaults(handler=cmd_apply)

    status = sub.add_parser("status", help="weights, traffic, errors and config version")
    status.add_argument("experiment", nargs="?", default=None, help="one experiment (default: all)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(handler=cmd_status)

    gateway = sub.add_parser("gateway", help="run the routing gateway")
    gateway.add_argument("--port", type=int, default=8000)
    gateway.add_argument("--host", default=None, help="bind address (default: $ABGATE_HOST)")
    gateway.add_argument("--config", default=None, help="experiment YAML to route at start")
    gateway.add_argument("--workers", type=int, default=1, help="processes (one per core)")
    gateway.add_argument(
        "--server",
        choices=("abgate", "uvicorn"),
        default="abgate",
        help="HTTP server: abgate's own (default; ~1.4x uvicorn's throughput) or uvicorn (ASGI)",
    )
    gateway.set_defaults(handler=cmd_gateway)

    up = sub.add_parser("up", help="start Redis, a worker per variant and the gateway")
    up.add_argument("--config", default="experiments/demo.yaml", help="experiment YAML")
    up.add_argument("--port", type=int, default=8000, help="gateway port (default 8000)")
    up.set_defaults(handler=cmd_up)

    loadgen = sub.add_parser("loadgen", help="send traffic with unit ids and post true labels")
    loadgen.add_argument("--url", default="http://127.0.0.1:8000", help="gateway URL")
    loadgen.add_argument("--rate", type=float, default=200.0, help="requests/s (0: unthrottled)")
    loadgen.add_argument("--duration", type=float, default=10.0, help="seconds")
    loadgen.add_argument(
        "--requests", type=int, default=None, help="stop after this many requests (at most)"
    )
    loadgen.add_argument("--concurrency", type=int, default=16)
    loadgen.add_argument("--feedback", type=float, default=1.0, help="share of answers labelled")
    loadgen.add_argument(
        "--shift",
        action="append",
        default=[],
        metavar="F:DELTA",
        help="add DELTA to feature F, an index or a name such as f3 (drift demos); repeatable",
    )
    loadgen.add_argument("--seed", type=int, default=0)
    loadgen.add_argument("--model", default=None, help="route /v1/MODEL/predict")
    loadgen.set_defaults(handler=cmd_loadgen)

    analyze = sub.add_parser("analyze", help="run the statistics engine on sufficient stats (JSON)")
    analyze.add_argument("file", metavar="FILE.json")
    analyze.add_argument("--format", choices=["json", "md", "html"], default="json")
    analyze.add_argument("--out", default=None, help="write here instead of stdout")
    analyze.set_defaults(handler=cmd_analyze)

    report = sub.add_parser("report", help="significance report of a recorded experiment")
    report.add_argument("experiment")
    report.add_argument("--format", choices=["json", "md", "html"], default="md")
    report.add_argument("--out", default=None, help="write here instead of stdout")
    report.set_defaults(handler=cmd_report)

    ramp = sub.add_parser("ramp", help="walk a canary through its ramp plan, gated by statistics")
    ramp.add_argument("file", metavar="FILE", help="experiment YAML with a `ramp:` section")
    ramp.add_argument("--out", default=None, help="report folder (default: next to FILE)")
    ramp.add_argument(
        "--dry-run",
        action="store_true",
        help="print the plan, the time it needs and its operating characteristics (simulated)",
    )
    ramp.add_argument(
        "--rate",
        type=_positive_float,
        default=None,
        help="requests/s for --dry-run (default: the recorded rate, if Redis has one)",
    )
    ramp.add_argument(
        "--runs", type=_positive_int, default=500, help="simulated ramps per canary (--dry-run)"
    )
    ramp.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="also log every decision with its evidence to stderr (always in ramp-NAME.log "
        "in the report folder)",
    )
    ramp.set_defaults(handler=cmd_ramp)

    promote = sub.add_parser("promote", help="make a variant the champion with all traffic")
    promote.add_argument("experiment")
    promote.add_argument("--variant", default=None, help="default: the ramp variant")
    promote.add_argument("--reason", default=None)
    promote.set_defaults(handler=cmd_promote)

    rollback = sub.add_parser("rollback", help="send all traffic back to the champion")
    rollback.add_argument("experiment")
    rollback.add_argument("--reason", required=True, help="why (goes to the audit log)")
    rollback.set_defaults(handler=cmd_rollback)

    simulate = sub.add_parser("simulate", help="calibrate the tests: A/A false positives, power")
    simulate.add_argument("--lift", type=float, default=0.15, help="relative effect for A/B")
    simulate.add_argument("--experiments", type=int, default=2000)
    simulate.add_argument("--looks", type=int, default=20)
    simulate.add_argument("--units-per-look", type=int, default=100)
    simulate.add_argument("--kind", choices=["mean", "proportion"], default="mean")
    simulate.add_argument("--mean", type=float, default=1.0, help="baseline mean (or rate)")
    simulate.add_argument("--alpha", type=float, default=0.05)
    simulate.add_argument("--seed", type=int, default=2024)
    simulate.set_defaults(handler=cmd_simulate)

    demo = sub.add_parser("demo", help="run the main job end to end (what `make demo` runs)")
    _registry_flag(demo)
    demo.set_defaults(handler=cmd_demo)
    return parser
