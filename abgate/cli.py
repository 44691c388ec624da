"""The ``abgate`` command: one front for every part of the product.

Handlers import what they need lazily so that quick commands (``validate``,
``analyze``) do not pay for FastAPI, scikit-learn or Redis at start-up.
Every failure ends with one line on stderr and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from core.errors import AbgateError

__all__ = ["main"]

EXIT_ERROR = 1
EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def _settings(process: str = "cli") -> Any:
    """The process's settings, built here; logging is configured from them at the same time."""
    from pydantic import ValidationError

    from core.logs import configure_logging
    from core.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:  # a bad ABGATE_* variable: one line, not a traceback
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        raise AbgateError(f"ABGATE_{where.upper()}: {message}" if where else message) from exc
    configure_logging(settings, process)
    return settings


# --- models -----------------------------------------------------------------


def training_params(args: argparse.Namespace) -> Any:
    """The ``TrainingParams`` an ``abgate train`` command line asks for."""
    from model_workers.training import TrainingParams

    try:
        return TrainingParams(
            algorithm=args.algorithm,
            n_estimators=args.n_estimators,
            max_depth=args.max_depth,
            learning_rate=args.learning_rate,
            seed=args.seed,
            label_noise=args.label_noise,
            n_samples=args.n_samples,
        )
    except ValueError as exc:
        raise AbgateError(str(exc)) from exc


def cmd_train(args: argparse.Namespace) -> int:
    from model_workers.registry import ModelRegistry
    from model_workers.training import train

    params = training_params(args)
    settings = _settings()
    registry = ModelRegistry(args.registry or settings.registry_dir)
    trained = train(params)
    path = registry.register(args.model, args.version, trained.estimator, trained.metadata)
    metrics = trained.metadata["holdout_metrics"]
    print(
        f"{args.model} {args.version}: accuracy {metrics['accuracy']:.4f}, "
        f"ROC AUC {metrics['roc_auc']:.4f}, log loss {metrics['log_loss']:.4f} -> {path}"
    )
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    from model_workers.registry import ModelRegistry

    registry = ModelRegistry(args.registry or _settings().registry_dir)
    rows = [(m, v) for m in registry.models() for v in registry.versions(m)]
    if not rows:
        print(f"no models in {registry.root}")
        return 0
    print(
        f"{'MODEL':<12} {'VERSION':<10} {'ESTIMATOR':<32} {'ACCURACY':>8} {'ROC AUC':>8}  CREATED"
    )
    for model, meta in rows:
        metrics = meta.get("holdout_metrics", {})
        accuracy = metrics.get("accuracy", float("nan"))
        auc = metrics.get("roc_auc", float("nan"))
        print(
            f"{model:<12} {meta['version']:<10} {meta.get('estimator', '?'):<32} "
            f"{accuracy:>8.4f} {auc:>8.4f}  {meta.get('created_at', '')}"
        )
    return 0


def cmd_models_show(args: argparse.Namespace) -> int:
    from model_workers.registry import ModelRegistry

    registry = ModelRegistry(args.registry or _settings().registry_dir)
    meta = registry.metadata(args.model, args.version)
    if not args.full:
        hidden = ("reference_distribution", "reference_predictions")
        meta = {k: v for k, v in meta.items() if k not in hidden}
    print(json.dumps(meta, indent=2, sort_keys=True))
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    import os

    from model_workers.mlflow_import import read_mlflow_model, resolve_model_dir
    from model_workers.registry import ModelRegistry, verified_estimator

    registry = ModelRegistry(args.registry or _settings().registry_dir)
    registry.version_dir(args.model, args.version)  # names checked before any reading
    tracking = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    directory = resolve_model_dir(args.source, tracking)
    mlflow_model = read_mlflow_model(directory)
    family = mlflow_model.estimator_class.rpartition(".")[2]
    estimator = verified_estimator(mlflow_model.artifact, family, str(directory))
    classes = getattr(estimator, "classes_", None)
    if not hasattr(estimator, "predict_proba") or classes is None:
        raise AbgateError(f"{directory}: abgate workers serve classifiers with predict_proba")
    metadata = mlflow_model.metadata(
        args.source, int(estimator.n_features_in_), [int(c) for c in classes]
    )
    path = registry.register_artifact(
        args.model, args.version, mlflow_model.artifact, {**metadata, "estimator": family}
    )
    sha = registry.metadata(args.model, args.version)["sha256"]
    print(f"imported {args.source} as {args.model} {args.version} ({family}, sha256 {sha[:12]}…)")
    print(f"  {path}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    import os

    # One request is one row: OpenMP threads only contend (several workers
    # share the cores), and their spin-waits turned 0.3 ms predictions into
    # timeouts under concurrency. Set before scikit-learn loads its runtime.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import uvicorn

    from model_workers.registry import ModelRegistry
    from model_workers.runtime import load_runtime
    from model_workers.server import create_worker_app

    settings = _settings("worker")
    registry = ModelRegistry(args.registry or settings.registry_dir)
    runtime = load_runtime(registry, args.model, args.version)
    app = create_worker_app(settings, runtime)
    uvicorn.run(
        app,
        host=args.host or settings.host,
        port=args.port,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's records go through abgate's logging (core/logs.py)
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    return 0


# --- experiments and the gateway --------------------------------------------


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


def _store(settings: Any) -> Any:
    from core.store import Store

    if not settings.redis_url:
        raise AbgateError("no Redis to talk to: set REDIS_URL (abgate up prints it)")
    store = Store(settings.redis_url, cluster=settings.redis_cluster)
    store.ping()
    return store


def _check_redis_mode(settings: Any) -> None:
    """Refuse a cluster node in single-node mode (writes would fail with MOVED forever);
    a Redis that does not answer yet is no reason not to route: recording waits."""
    from core.errors import RedisModeMismatch, RedisUnavailable

    try:
        _store(settings).close()
    except RedisModeMismatch:
        raise
    except Exception as exc:  # down or unreachable: the gateway buffers until it answers
        reason = exc.message if isinstance(exc, RedisUnavailable) else exc
        logging.getLogger("abgate.gateway").warning("Redis not reachable at start: %s", reason)


def _actor() -> str:
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # no user name in some containers
        return "cli"


def _load_beside_stored(path: str, store: Any) -> Any:
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
    settings = _settings()
    store = _store(settings)
    config = _load_beside_stored(args.file, store)
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
        actor=_actor(),
        action="apply",
        reason=args.reason or f"applied {args.file}",
    )
    print(f"{config.name}: stored as version {version}; gateways follow within a second")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from recorded.status import render_status

    store = _store(_settings())
    print(render_status(store, args.experiment, as_json=args.json))
    return 0


def cmd_gateway(args: argparse.Namespace) -> int:
    import functools
    import os

    from experiments.loader import load_experiment
    from gateway.app import build_gateway
    from gateway.exposure import exposure_warning

    settings = _settings("gateway")
    bootstrap = load_experiment(args.config) if args.config else None  # fail fast, one line
    if not settings.redis_url and bootstrap is None:
        raise AbgateError("nothing to route: give --config FILE or set REDIS_URL")
    if settings.redis_url:
        _check_redis_mode(settings)
    host = args.host or settings.host
    settings = settings.model_copy(update={"host": host})  # what the gateway is bound to
    warning = exposure_warning(settings)
    if warning is not None:
        logging.getLogger("abgate.gateway").warning(warning)
    if args.workers <= 1:
        settings = settings.model_copy(update={"metrics_dir": ""})  # one process: nothing shared
    # Separate processes share nothing but Redis: each builds its own gateway.
    build = functools.partial(build_gateway, bootstrap=bootstrap)

    if args.server == "abgate":
        from gateway.server import serve

        # Forked server processes are handed these settings; nothing goes through os.environ.
        return serve(
            build,
            settings,
            host=host,
            port=args.port,
            workers=args.workers,
            backlog=2048,
            graceful_timeout=10,
        )

    import uvicorn

    if args.workers > 1:
        # uvicorn's worker processes import the app by name and take no objects: they
        # rebuild the settings from the environment (gateway.app.app_from_environment).
        os.environ["ABGATE_GATEWAY_CONFIG"] = str(args.config or "")
        os.environ["ABGATE_HOST"] = host
    uvicorn.run(
        "gateway.app:app_from_environment" if args.workers > 1 else build(settings),
        factory=args.workers > 1,
        workers=args.workers,
        host=host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=settings.log_level,
        log_config=None,  # uvicorn's records go through abgate's logging (core/logs.py)
        access_log=False,
        timeout_graceful_shutdown=10,
        # X-Forwarded-* only from ABGATE_TRUSTED_PROXIES, as abgate's own server does
        # (uvicorn's default would believe them from 127.0.0.1).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        backlog=2048,
    )
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from pathlib import Path

    from abgate.up import run_up

    return run_up(_settings("up"), Path(args.config), args.port)


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

    store = _store(_settings())
    _emit(render(experiment_data(store, args.experiment), args.format), args.out)
    return 0


def _experiment_config(store: Any, name: str) -> Any:
    from experiments.config import ExperimentConfig

    return ExperimentConfig.model_validate(store.get_config(name).config)


def cmd_ramp(args: argparse.Namespace) -> int:
    from pathlib import Path

    from experiments.loader import load_experiment
    from model_workers.registry import ModelRegistry
    from ramp.controller import ACTOR, RampController
    from ramp.dry_run import describe_plan

    config = load_experiment(args.file)
    if config.ramp is None:
        raise AbgateError(f"{args.file}: no `ramp:` section to run")
    settings = _settings("ramp")
    registry = ModelRegistry(settings.registry_dir)
    if args.dry_run:
        store = None
        if settings.redis_url:
            from core.store import Store

            store = Store(settings.redis_url, cluster=settings.redis_cluster)
        print(describe_plan(config, registry=registry, store=store, rate=args.rate, runs=args.runs))
        return 0
    store = _store(settings)
    config = _load_beside_stored(args.file, store)  # the ramp stores it: as `apply` would

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


def cmd_promote(args: argparse.Namespace) -> int:
    from experiments import changes

    store = _store(_settings())
    config = _experiment_config(store, args.experiment)
    variant = args.variant or (config.ramp_variant.name if config.ramp_variant else None)
    if variant is None:
        raise AbgateError("name the variant to promote with --variant")
    updated = changes.promote(config, variant)
    version = store.put_config(
        args.experiment,
        updated.model_dump(mode="json"),
        actor=_actor(),
        action="promote",
        reason=args.reason or "manual promotion",
        evidence={"variant": variant},
    )
    print(f"{args.experiment}: {variant} is the champion (config version {version})")
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    from experiments import changes

    store = _store(_settings())
    config = _experiment_config(store, args.experiment)
    updated = changes.rollback(config)
    version = store.put_config(
        args.experiment,
        updated.model_dump(mode="json"),
        actor=_actor(),
        action="rollback",
        reason=args.reason,
    )
    print(f"{args.experiment}: all traffic back to {config.champion.name} (version {version})")
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


def cmd_demo(args: argparse.Namespace) -> int:
    from abgate.demo import run_demo

    return run_demo(_settings("demo"), registry_dir=args.registry)


# --- parser -----------------------------------------------------------------

Handler = Callable[[argparse.Namespace], int]


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Ctrl-C stops a command even when it was started with SIGINT ignored (a shell's
    # background job passes SIG_IGN on, and Python then leaves KeyboardInterrupt off).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return int(args.handler(args))
    except AbgateError as exc:
        from core.logs import report_failure

        report_failure(f"abgate {args.command}: error: {exc.message}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"abgate {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `abgate status --json | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not fail again, and exit quietly.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR
