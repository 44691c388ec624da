"""The experiment config: frozen pydantic models of one experiment YAML file, no I/O.

``ExperimentConfig`` is the whole experiment, made of its sections: the
variants and shadows (``experiments/variants.py``), how requests reach them
(``routing.py``), what is measured (``metrics.py``) and the ramp plan
(``ramp_plan.py``). Field checks live on the fields (``fields.py``,
``endpoints.py``); checks that span fields (one champion, unique names, weights
summing to 100, a ramp that names a real variant, ...) run once the fields are
valid (``consistency.py``) and report the path of the most relevant field, so
the loader can point at its line. ``config.model_dump(mode="json")``
round-trips through ``ExperimentConfig.model_validate``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field, ModelWrapValidatorHandler, ValidationError, model_validator

from core.errors import ConfigError, NotFound
from experiments.consistency import cross_field_problems
from experiments.endpoints import EXPERIMENT_PROTOCOL, Protocol
from experiments.fields import ConfigModel, Name, RegistryName
from experiments.metrics import LABEL_METRIC, Metrics, Statistics
from experiments.problems import Problem, describe, raise_problems
from experiments.ramp_plan import Ramp
from experiments.routing import AssignmentRules, Fallback, Namespace, Override, Unit
from experiments.variants import Shadow, Variant

__all__ = ["ExperimentConfig", "validate_experiment", "validation_problems"]


class ExperimentConfig(ConfigModel):
    """One experiment: the model it routes, its variants and the rules around them."""

    name: Name = Field(description="Experiment name; keys, metrics and reports use it.")
    model: RegistryName = Field(description="Model the experiment routes (POST /predict).")
    protocol: Protocol = Field(
        default="abgate",
        description="What the variants' servers speak, and so what clients send: abgate "
        "(abgate's own workers, POST /predict), kserve-v1 (POST /v1/models/<model>:predict), "
        "open-inference-v2 (POST /v2/models/<model>/infer: KServe, Seldon MLServer, Triton) "
        "or mlflow (POST /invocations). One per experiment: the gateway forwards the body "
        "untouched, so every variant and shadow must understand it.",
    )
    description: str | None = Field(default=None, max_length=2000, description="Free text.")
    unit: Unit = Field(default_factory=Unit, description="What is hashed to pick a variant.")
    namespace: Namespace | None = Field(
        default=None,
        description="GrowthBook namespace {id, start, end} (or [id, start, end]): the share "
        "of the model's units this experiment gets. Needed when several experiments route "
        "one model; their ranges of one id must not overlap. Default: every unit.",
    )
    assignment: AssignmentRules = Field(
        default_factory=AssignmentRules, description="Layout of units over the variants."
    )
    seed: str = Field(
        default="",
        min_length=1,
        max_length=256,
        description="Hash seed; defaults to the experiment name. Changing it reshuffles units.",
    )
    variants: tuple[Variant, ...] = Field(min_length=1, description="Live variants.")
    shadows: tuple[Shadow, ...] = Field(default=(), description="Mirrored variants.")
    override: Override = Field(default_factory=Override, description="Forcing a variant.")
    fallback: Fallback = Field(default_factory=Fallback, description="Retries on the champion.")
    metrics: Metrics = Field(default_factory=Metrics, description="Primary metric, guardrails.")
    statistics: Statistics = Field(default_factory=Statistics, description="Test settings.")
    ramp: Ramp | None = Field(default=None, description="Canary ramp plan, if any.")

    @model_validator(mode="wrap")
    @classmethod
    def _with_protocol(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        # The endpoints' field checks depend on the protocol (a base path or not), and
        # run before any cross-field check: tell them, so every problem shows at once.
        protocol = data.get("protocol", "abgate") if isinstance(data, dict) else None
        token = EXPERIMENT_PROTOCOL.set(protocol if isinstance(protocol, str) else None)
        try:
            return handler(data)
        finally:
            EXPERIMENT_PROTOCOL.reset(token)

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        # Resolved here rather than left None, so a stored config says which
        # seed and ramp variant it uses even if names or roles change later.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("seed") is None and isinstance(data.get("name"), str):
            data["seed"] = data["name"]
        ramp, variants = data.get("ramp"), data.get("variants")
        if isinstance(ramp, dict) and ramp.get("variant") is None and isinstance(variants, list):
            canaries = [
                v.get("name") for v in variants if isinstance(v, dict) and v.get("role") == "canary"
            ]
            if len(canaries) == 1:
                data["ramp"] = ramp = {**ramp, "variant": canaries[0]}
        shadow = ramp.get("shadow") if isinstance(ramp, dict) else None
        if isinstance(shadow, dict) and shadow.get("metric") is None:
            metrics = data.get("metrics")
            primary = metrics.get("primary") if isinstance(metrics, dict) else None
            name = primary.get("name") if isinstance(primary, dict) else "accuracy"
            if isinstance(primary, dict) and primary.get("source", "label") != "label":
                name = LABEL_METRIC  # labels are still scored beside a reward or value
            if isinstance(name, str) and isinstance(ramp, dict):
                data["ramp"] = {**ramp, "shadow": {**shadow, "metric": name}}
        return data

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        raise_problems("ExperimentConfig", cross_field_problems(self))
        return self

    @property
    def champion(self) -> Variant:
        """The variant with role champion (there is exactly one)."""
        return next(v for v in self.variants if v.role == "champion")

    @property
    def ramp_variant(self) -> Variant | None:
        """The variant a ramp raises: ``ramp.variant``, else the canary, else ``None``."""
        if self.ramp is not None and self.ramp.variant is not None:
            if self.in_shadow_phase:
                return None  # mirrored as a shadow: no weight to raise yet
            return self.variant(self.ramp.variant)
        return next((v for v in self.variants if v.role == "canary"), None)

    @property
    def in_shadow_phase(self) -> bool:
        """Whether the ramp's candidate is mirrored as a shadow (its shadow phase) now."""
        name = self.ramp.variant if self.ramp is not None else None
        return name is not None and any(s.name == name for s in self.shadows)

    @property
    def weights(self) -> dict[str, float]:
        """Percent of traffic per variant name, in config order."""
        return {v.name: v.weight for v in self.variants}

    def variant(self, name: str) -> Variant:
        """The live variant called ``name``; ``NotFound`` if there is none."""
        for variant in self.variants:
            if variant.name == name:
                return variant
        known = ", ".join(v.name for v in self.variants)
        raise NotFound(f"no variant {name!r} in experiment {self.name} (variants: {known})")

    def with_weights(self, weights: Mapping[str, float]) -> ExperimentConfig:
        """A validated copy with new weights for the named variants; others keep theirs.

        Raises ``ConfigError`` for unknown names or weights that do not sum to 100.
        """
        known = [v.name for v in self.variants]
        unknown = [name for name in weights if name not in known]
        if unknown:
            problems = [f"weights.{name}: unknown variant; expected one of: {', '.join(known)}"
                        for name in unknown]  # fmt: skip
            raise ConfigError("; ".join(problems), problems)
        data = self.model_dump(mode="json")
        for variant in data["variants"]:
            variant["weight"] = weights.get(variant["name"], variant["weight"])
        return validate_experiment(data)

    def ramp_weights(self, percent: float) -> dict[str, float]:
        """Weights with the ramp variant at ``percent``; the others keep their relative shares.

        If the others have no traffic now, the rest goes to the champion.
        Raises ``ConfigError`` when there is no ramp variant.
        """
        ramp = self.ramp_variant
        if ramp is None:
            raise ConfigError(
                f"experiment {self.name} has no ramp variant", ["ramp.variant: unset"]
            )
        others = [v for v in self.variants if v.name != ramp.name]
        total = sum(v.weight for v in others)
        rest = 100.0 - percent
        weights = {v.name: rest * v.weight / total if total > 0 else 0.0 for v in others}
        if total <= 0:
            weights[self.champion.name] = rest
        weights[ramp.name] = float(percent)
        return {v.name: weights[v.name] for v in self.variants}


def validate_experiment(data: Mapping[str, Any]) -> ExperimentConfig:
    """Validate plain data (e.g. the stored JSON form); ``ConfigError`` lists every problem."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = [str(problem) for problem in validation_problems(exc)]
        raise ConfigError("; ".join(problems), problems) from exc


def validation_problems(exc: ValidationError) -> list[Problem]:
    """The findings of a pydantic error, in words an ML platform engineer reads quickly."""
    errors = exc.errors()
    locs = [tuple(err["loc"]) for err in errors]
    return [
        Problem(loc, describe(err, ExperimentConfig))
        for loc, err in zip(locs, errors, strict=True)
        # pydantic counts only the valid items of a list: an invalid item also
        # reads as "too short", which would send people to the wrong field.
        if not (err["type"] == "too_short" and any(o[: len(loc)] == loc != o for o in locs))
    ]
