"""``abgate train`` and ``abgate models``: model versions in the registry."""

from __future__ import annotations

import argparse
import json
from typing import Any

from abgate.cli.context import command_settings
from core.errors import AbgateError

__all__ = [
    "cmd_models_import",
    "cmd_models_list",
    "cmd_models_show",
    "cmd_train",
    "training_params",
]


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
    settings = command_settings()
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

    registry = ModelRegistry(args.registry or command_settings().registry_dir)
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

    registry = ModelRegistry(args.registry or command_settings().registry_dir)
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

    registry = ModelRegistry(args.registry or command_settings().registry_dir)
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
