"""Training of demo model versions on a reproducible classification task.

The task is scikit-learn's ``make_classification`` with 10 features, like the
classic Flask model API. Every version sees the same data (fixed data seed),
so holdout metrics compare; a version's own ``seed`` drives the estimator and
``label_noise`` flips that share of the positive training labels to 0 to make a
deliberately worse model. One-sided noise, like a broken labelling job, is
used because symmetric flips barely hurt a tree ensemble's accuracy. Pure
functions here; registering the result is the caller's job.
"""

from __future__ import annotations

import hashlib
import platform
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np

__all__ = [
    "DEMO_VERSIONS",
    "Dataset",
    "TrainedModel",
    "TrainingParams",
    "demo_dataset",
    "reference_distribution",
    "reference_predictions",
    "train",
]

Algorithm = Literal["gradient_boosting", "random_forest", "logistic_regression"]

N_FEATURES = 10
DATA_SEED = 2024


@dataclass(frozen=True)
class TrainingParams:
    """Everything that decides what a training run produces."""

    algorithm: Algorithm = "gradient_boosting"
    n_estimators: int = 50
    max_depth: int | None = 3
    learning_rate: float = 0.1
    seed: int = 0
    label_noise: float = 0.0
    n_samples: int = 20_000

    def __post_init__(self) -> None:
        if self.n_estimators < 1:
            raise ValueError("n_estimators must be at least 1")
        if self.max_depth is not None and self.max_depth < 1:
            raise ValueError("max_depth must be at least 1")
        if not 0.0 <= self.label_noise < 1.0:
            raise ValueError("label_noise must be in [0, 1)")
        if self.n_samples < 200:
            raise ValueError("n_samples must be at least 200")
        if not 0.0 < self.learning_rate <= 1.0:
            raise ValueError("learning_rate must be in (0, 1]")


@dataclass(frozen=True)
class Dataset:
    """Train and holdout split of the demo task."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray

    def fingerprint(self) -> str:
        """sha256 over the exact training and holdout arrays."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_holdout, self.y_holdout):
            digest.update(np.ascontiguousarray(array).tobytes())
        return digest.hexdigest()


@dataclass(frozen=True)
class TrainedModel:
    """A fitted estimator and the metadata the registry stores with it."""

    estimator: Any
    metadata: dict[str, Any]


# The three versions `make demo` needs: a champion, a better challenger and a
# deliberately worse canary (40 % of its positive labels flipped to 0).
DEMO_VERSIONS: dict[str, TrainingParams] = {
    "v1": TrainingParams(n_estimators=15, max_depth=2, seed=1),
    "v2": TrainingParams(n_estimators=80, max_depth=6, seed=2),
    "v3": TrainingParams(n_estimators=40, max_depth=3, seed=3, label_noise=0.4),
}


def demo_dataset(n_samples: int = 20_000) -> Dataset:
    """The demo task: the same rows for every version (fixed data seed)."""
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split

    x, y = make_classification(
        n_samples=n_samples,
        n_features=N_FEATURES,
        n_informative=6,
        n_redundant=2,
        class_sep=0.8,
        flip_y=0.01,
        random_state=DATA_SEED,
    )
    x_train, x_holdout, y_train, y_holdout = train_test_split(
        x, y, test_size=0.25, random_state=DATA_SEED, stratify=y
    )
    return Dataset(x_train, y_train, x_holdout, y_holdout)


def reference_distribution(x: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Per-feature quantile bin edges and the share of rows in each bin.

    Drift checks later bin live features by the same inner edges and compare
    shares (PSI); bins are open-ended at both extremes.
    """
    out = []
    for column in range(x.shape[1]):
        edges, proportions = _quantile_bins(x[:, column], bins)
        out.append({"feature": f"f{column}", "edges": edges, "proportions": proportions})
    return out


def _quantile_bins(values: np.ndarray, bins: int) -> tuple[list[float], list[float]]:
    edges = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return (
        [round(float(e), 10) for e in edges],
        [round(float(c) / len(values), 10) for c in counts],
    )


def reference_predictions(classes: np.ndarray, proba: np.ndarray, bins: int = 10) -> dict[str, Any]:
    """Share of each predicted class and quantile bins of the score, for prediction drift.

    The score is the probability of the last class (the positive one of a
    binary model). Computed on the holdout rows: predictions on the training
    rows themselves are over-confident, so live traffic would look drifted.
    """
    predicted = classes[proba.argmax(axis=1)]
    edges, proportions = _quantile_bins(proba[:, -1], bins)
    return {
        "classes": [int(c) for c in classes],
        "class_proportions": [round(float(np.mean(predicted == c)), 10) for c in classes],
        "score": f"probability of class {int(classes[-1])}",
        "score_edges": edges,
        "score_proportions": proportions,
    }


def _estimator(params: TrainingParams) -> Any:
    if params.algorithm == "gradient_boosting":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(
            max_iter=params.n_estimators,
            max_depth=params.max_depth,
            learning_rate=params.learning_rate,
            early_stopping=False,
            random_state=params.seed,
        )
    if params.algorithm == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        return RandomForestClassifier(
            n_estimators=params.n_estimators,
            max_depth=params.max_depth,
            random_state=params.seed,
            n_jobs=1,
        )
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=1000, random_state=params.seed)


def _library_versions() -> dict[str, str]:
    import scipy
    import sklearn
    import skops

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "scikit-learn": sklearn.__version__,
        "skops": skops.__version__,
    }


def train(params: TrainingParams, dataset: Dataset | None = None) -> TrainedModel:
    """Fit one version and compute its holdout metrics and metadata."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    data = dataset or demo_dataset(params.n_samples)
    y_train = data.y_train
    if params.label_noise > 0:
        rng = np.random.default_rng(params.seed)
        flip = (rng.random(len(y_train)) < params.label_noise) & (y_train == 1)
        y_train = np.where(flip, 0, y_train)
    estimator = _estimator(params)
    estimator.fit(data.x_train, y_train)
    proba = estimator.predict_proba(data.x_holdout)
    metrics = {
        "accuracy": round(float(accuracy_score(data.y_holdout, proba.argmax(axis=1))), 6),
        "roc_auc": round(float(roc_auc_score(data.y_holdout, proba[:, 1])), 6),
        "log_loss": round(float(log_loss(data.y_holdout, proba)), 6),
        "n_holdout": len(data.y_holdout),
    }
    metadata = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training_params": asdict(params),
        "features": {
            "count": N_FEATURES,
            "names": [f"f{i}" for i in range(N_FEATURES)],
        },
        "classes": [int(c) for c in estimator.classes_],
        "holdout_metrics": metrics,
        "training_data": {
            "generator": "sklearn.datasets.make_classification",
            "data_seed": DATA_SEED,
            "n_train": len(data.y_train),
            "fingerprint": data.fingerprint(),
        },
        "reference_distribution": reference_distribution(data.x_train),
        "reference_predictions": reference_predictions(estimator.classes_, proba),
        "libraries": _library_versions(),
    }
    return TrainedModel(estimator, metadata)
