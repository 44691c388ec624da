"""The experiment config: frozen pydantic models of one experiment YAML file, no I/O.

Field checks live on the fields; checks that span fields (one champion, unique
names, weights summing to 100, a ramp that names a real variant, ...) run once
the fields are valid and report the path of the most relevant field, so the
loader can point at its line. ``config.model_dump(mode="json")`` round-trips
through ``ExperimentConfig.model_validate``.
"""

from __future__ import annotations

import contextvars
import difflib
import functools
import ipaddress
import math
import re
import typing
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    model_validator,
)
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from core.errors import ConfigError, NotFound

__all__ = [
    "CONFIG_ERROR_TYPE",
    "PROMOTION_PERCENT",
    "AssignmentRules",
    "ExperimentConfig",
    "Fallback",
    "FallbackTrigger",
    "Guardrail",
    "GuardrailMetric",
    "Loc",
    "Metrics",
    "Namespace",
    "Override",
    "PrimaryMetric",
    "Problem",
    "Protocol",
    "Ramp",
    "RampTest",
    "Role",
    "Shadow",
    "ShadowPhase",
    "Statistics",
    "Unit",
    "UnitSource",
    "Variant",
    "endpoint_path",
    "validate_experiment",
    "validation_problems",
]

Loc = tuple[str | int, ...]
Role = Literal["champion", "challenger", "canary"]
UnitSource = Literal["request_id", "header", "json_field"]
FallbackTrigger = Literal["connect_error", "timeout", "5xx"]
# What the variants' servers speak, and so what clients send (docs/model-servers.md).
Protocol = Literal["abgate", "kserve-v1", "open-inference-v2", "mlflow"]
# Protocols whose paths name the model: a variant may give its name on its server.
NAMED_MODEL_PROTOCOLS = ("kserve-v1", "open-inference-v2")
GuardrailMetric = Literal[
    "error_rate", "mean_latency_ms", "p50_latency_ms", "p95_latency_ms", "p99_latency_ms"
]

# The pydantic error type of every cross-field finding made here.
CONFIG_ERROR_TYPE = "experiment_config"

WEIGHT_SUM_TOLERANCE = 1e-6
_MAX_TIMEOUT_MS = 600_000

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
# What the model registry accepts for model and version names.
_REGISTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# RFC 9110 token characters: what an HTTP header name may contain.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HOST_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def _problem(message: str) -> PydanticCustomError:
    # The message goes in ctx: a template would misread braces in user values.
    return PydanticCustomError(CONFIG_ERROR_TYPE, "{message}", {"message": message})


def _raise_problems(title: str, problems: list[tuple[Loc, str]]) -> None:
    """Raise every cross-field finding at once, each at its own field path."""
    if problems:
        details = [
            InitErrorDetails(type=_problem(message), loc=loc, input=None)
            for loc, message in problems
        ]
        raise ValidationError.from_exception_data(title, details)


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise _problem(
            f"expected lowercase letters, digits, '_' or '-', starting with a letter or digit; "
            f"got {value!r}"
        )
    return value


def _check_registry_name(value: str) -> str:
    if not _REGISTRY_NAME.fullmatch(value):
        raise _problem(
            f"expected letters, digits, '.', '_' or '-', starting with a letter or digit; "
            f"got {value!r}"
        )
    return value


def _check_header_name(value: str) -> str:
    if not _HEADER_NAME.fullmatch(value):
        raise _problem(f"expected an HTTP header name (letters, digits, '-', ...); got {value!r}")
    return value


def _check_host(host: str) -> bool:
    if host.startswith("[") and host.endswith("]"):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return False
        return True
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        pass
    else:
        return True
    labels = host.lower().split(".")
    # A name of digits and dots only that is no IPv4 address is a typo, not a host.
    if all(label.isdigit() for label in labels):
        return False
    return len(host) <= 253 and all(_HOST_LABEL.fullmatch(label) for label in labels)


# The protocol of the experiment being validated, for its endpoints' field checks (set
# around ExperimentConfig's validation; None: a variant checked on its own).
_PROTOCOL: contextvars.ContextVar[str | None] = contextvars.ContextVar("protocol", default=None)
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~!$&'()*+,;=:@%-]+)+")


def _check_endpoint(url: str) -> str:
    """A server base URL: ``http(s)://host[:port][/base/path]``, without a trailing slash.

    The gateway appends the protocol's own path, so a query, fragment or
    credentials here would be silently dropped or misused: reject them. A
    base path (a server behind an ingress prefix) is checked against the
    experiment's protocol once it is known (abgate's own workers take none).
    """
    expected = "expected http://host[:port] or https://host[:port]"
    if any(c.isspace() or not c.isprintable() for c in url) or "\\" in url:
        raise _problem(f"{expected}; got {url!r} (contains whitespace or a backslash)")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise _problem(f"{expected}; got {url!r}")
    rest = rest.rstrip("/")
    for char, what in (
        ("@", "credentials are"),
        ("?", "a query is"),
        ("#", "a fragment is"),
    ):
        if char in rest:
            raise _problem(f"{expected}; got {url!r} ({what} not allowed here)")
    rest, slash, path = rest.partition("/")
    if slash and _PROTOCOL.get() == "abgate":
        raise _problem(
            f"{expected}; got {url!r} (a path is not allowed with protocol abgate: the "
            "gateway appends /predict; the other protocols take a base path)"
        )
    if slash and not _BASE_PATH.fullmatch("/" + path):
        raise _problem(f"{expected}[/base/path]; got {url!r} (bad path)")
    host, port = rest, ""
    if rest.startswith("["):
        close = rest.find("]")
        host, port = rest[: close + 1], rest[close + 1 :]
        if close < 0 or (port and not port.startswith(":")):
            raise _problem(f"{expected}; got {url!r} (bad IPv6 address)")
        port = port[1:]
    elif ":" in rest:
        host, _, port = rest.rpartition(":")
    if not host or not _check_host(host):
        raise _problem(f"{expected}; got {url!r} (bad host {host!r})")
    if ":" in rest.removeprefix(host) and not (port.isdigit() and 1 <= int(port) <= 65535):
        raise _problem(f"{expected}; got {url!r} (port must be 1..65535)")
    return f"{scheme}://{rest}{slash}{path}"


def endpoint_path(url: str) -> str:
    """The base path of a validated endpoint URL ("" when it has none)."""
    _, _, rest = url.partition("://")
    _, slash, path = rest.partition("/")
    return slash + path


Name = Annotated[str, Field(min_length=1, max_length=63), AfterValidator(_check_name)]
RegistryName = Annotated[
    str, Field(min_length=1, max_length=64), AfterValidator(_check_registry_name)
]
HeaderName = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_check_header_name)]
Endpoint = Annotated[str, Field(max_length=2048), AfterValidator(_check_endpoint)]
Percent = Annotated[float, Field(ge=0, le=100, strict=True, allow_inf_nan=False)]
# Range checked by the model, so that one bad ramp step does not hide the others.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, strict=True, allow_inf_nan=False)]
TimeoutMs = Annotated[int, Field(gt=0, le=_MAX_TIMEOUT_MS, strict=True)]
Seconds = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]
Flag = Annotated[bool, Field(strict=True)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _unique_endpoints(endpoints: tuple[str, ...]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for i, url in enumerate(endpoints):
        if url in endpoints[:i]:
            first = endpoints.index(url)
            problems.append((("endpoints", i), f"duplicate endpoint {url} (endpoints.{first})"))
    return problems


class Variant(_Model):
    """A live model version that serves a share of the traffic."""

    name: Name = Field(description="Unique within the experiment; shows in metrics and reports.")
    role: Role = Field(
        description="champion (the current model, exactly one), challenger or canary "
        "(at most one; the variant a ramp raises by default)."
    )
    model_version: RegistryName = Field(description="Model version the endpoints serve.")
    endpoints: tuple[Endpoint, ...] = Field(
        min_length=1,
        description="Server base URLs, http(s)://host[:port] (plus a base path for protocols "
        "other than abgate); requests are spread over them.",
    )
    upstream_model: RegistryName | None = Field(
        default=None,
        description="The model's name on its server, in the kserve-v1 and open-inference-v2 "
        "paths; default: the experiment's model.",
    )
    weight: Percent = Field(
        description="Percent of the traffic; the weights of all variants sum to 100."
    )
    timeout_ms: TimeoutMs = Field(
        default=1000, description="Per-request timeout for this variant's workers."
    )

    @model_validator(mode="after")
    def _check(self) -> Variant:
        _raise_problems("Variant", _unique_endpoints(self.endpoints))
        return self


class Shadow(_Model):
    """A mirrored model version: it gets a copy of requests; its answer is never returned."""

    name: Name = Field(description="Unique within the experiment (variants included).")
    model_version: RegistryName = Field(description="Model version the endpoints serve.")
    endpoints: tuple[Endpoint, ...] = Field(
        min_length=1, description="Server base URLs, as a variant's."
    )
    upstream_model: RegistryName | None = Field(
        default=None, description="The model's name on its server, as a variant's."
    )
    sample_rate: Fraction = Field(
        default=1.0,
        description="Mirror share: fraction of units mirrored (by a hash of the unit, sticky, "
        "so the same units are mirrored on every replica and run).",
    )
    timeout_ms: TimeoutMs = Field(default=1000, description="Per-request timeout.")
    max_inflight: int = Field(
        default=64,
        ge=1,
        le=100_000,
        description="Calls to this shadow in flight per gateway process beyond which a "
        "request is not mirrored to it (shed, and counted): a slow shadow never holds "
        "more than this many tasks and connections.",
    )

    @model_validator(mode="after")
    def _check(self) -> Shadow:
        _raise_problems("Shadow", _unique_endpoints(self.endpoints))
        return self


class Unit(_Model):
    """What identifies the unit of randomisation that is hashed to a variant."""

    source: UnitSource = Field(
        default="request_id",
        description="request_id (every request on its own), header or json_field; when the "
        "header or field is missing the request id is used.",
    )
    name: str | None = Field(
        default=None,
        max_length=128,
        description="Header name (source header) or top-level JSON field (source json_field).",
    )

    @model_validator(mode="after")
    def _check(self) -> Unit:
        problems: list[tuple[Loc, str]] = []
        if self.source == "request_id":
            if self.name is not None:
                problems.append((("name",), "only used when source is header or json_field"))
        elif not self.name:
            problems.append((("name",), f"required when source is {self.source}"))
        elif self.source == "header" and not _HEADER_NAME.fullmatch(self.name):
            problems.append((("name",), f"expected an HTTP header name; got {self.name!r}"))
        _raise_problems("Unit", problems)
        return self


class AssignmentRules(_Model):
    """How units are laid out over the variants (see docs/configuration.md, "Assignment")."""

    layout: Literal["monotone", "growthbook"] = Field(
        default="monotone",
        description="monotone (default): ramp safe, a unit never moves between two non-ramp "
        "variants as the ramp variant's weight changes, but with a ramp variant it agrees "
        "with a GrowthBook SDK only for two variants with the ramp variant listed last. "
        "growthbook: GrowthBook's bucket ranges, so an SDK with the same seed and weights "
        "agrees for any number of variants, but with two or more other variants on one side "
        "of the ramp variant units move between them as it ramps. Without a ramp variant "
        "both are GrowthBook's layout.",
    )


class Namespace(_Model):
    """GrowthBook's namespace ``[id, start, end]``: which share of a model's units may enter.

    A unit is in the namespace when GrowthBook's hash of it (version 1, seed
    ``"__" + id``) falls in ``[start, end)``. Experiments on one model with
    disjoint ranges of one id are mutually exclusive. Also read from the
    GrowthBook form, a list ``[id, start, end]``.
    """

    id: str = Field(min_length=1, max_length=128, description="Namespace id, as in GrowthBook.")
    start: Fraction = Field(description="Start of the range in [0, 1], inclusive.")
    end: Fraction = Field(description="End of the range in [0, 1], exclusive.")

    @model_validator(mode="before")
    @classmethod
    def _growthbook_list(cls, data: Any) -> Any:
        if isinstance(data, list | tuple) and len(data) == 3:
            return {"id": data[0], "start": data[1], "end": data[2]}
        return data

    @model_validator(mode="after")
    def _check(self) -> Namespace:
        if self.end <= self.start:
            _raise_problems(
                "Namespace",
                [(("end",), f"must be above start ({self.start:g}), got {self.end:g}")],
            )
        return self

    def overlaps(self, other: Namespace) -> bool:
        """Whether some unit can be in both (always, for different ids: they hash apart)."""
        return self.id != other.id or (self.start < other.end and other.start < self.end)


class Override(_Model):
    """A request header that forces a variant by name (for QA); off by default."""

    enabled: Flag = Field(default=False, description="Honour the override header.")
    header: HeaderName = Field(
        default="X-Abgate-Variant", description="Header whose value names the variant to use."
    )


class Fallback(_Model):
    """Retrying a failed non-champion request on the champion."""

    enabled: Flag = Field(default=True, description="Retry failed non-champion calls.")
    on: tuple[FallbackTrigger, ...] = Field(
        default=("connect_error", "timeout", "5xx"),
        description="Failures that trigger the retry: connect_error, timeout, 5xx.",
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_on_key(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true (yaml.safe_load does).
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data

    @model_validator(mode="after")
    def _check(self) -> Fallback:
        problems: list[tuple[Loc, str]] = []
        for i, trigger in enumerate(self.on):
            if trigger in self.on[:i]:
                problems.append((("on", i), f"duplicate trigger {trigger!r}"))
        if self.enabled and not self.on:
            problems.append((("on",), "name at least one trigger, or set enabled: false"))
        _raise_problems("Fallback", problems)
        return self


class PrimaryMetric(_Model):
    """The metric a promotion is decided on."""

    name: Name = Field(description="Metric name in reports, e.g. accuracy.")
    kind: Literal["proportion", "mean"] = Field(
        default="proportion", description="proportion (0/1 outcomes) or mean (any number)."
    )
    source: Literal["label", "reward", "value"] = Field(
        default="label",
        description="Feedback field it is computed from: label (1 when it equals the "
        "prediction), reward or value (the number itself).",
    )
    direction: Literal["increase", "decrease"] = Field(
        default="increase", description="Which direction is better."
    )
    difference: Literal["relative", "absolute"] | None = Field(
        default=None,
        description="How the effect is reported: relative ((new - champion) / champion) or "
        "absolute (new - champion, in the metric's units). Verdicts always test the "
        "difference. Default: relative for kind proportion, absolute for kind mean; a "
        "relative lift is refused (absolute reported, with the reason) when the champion's "
        "mean is <= 0 or its interval includes 0.",
    )


class Guardrail(_Model):
    """A metric the new version must not make worse by more than a threshold.

    Each limit set is checked on its own (any one exceeded rolls back); see
    ``analysis.guardrails`` for how each metric is tested.
    """

    name: GuardrailMetric = Field(
        description="Operational metric the gateway records: error_rate (errors per request), "
        "mean_latency_ms, or the p50/p95/p99 of the latency histogram."
    )
    max_relative_increase: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="(new - champion) / champion limit, e.g. 0.2 for +20 %.",
    )
    max_absolute_increase: float | None = Field(
        default=None,
        ge=0,
        allow_inf_nan=False,
        description="new - champion limit, in the metric's units (a rate, or ms).",
    )
    max_ratio: float | None = Field(
        default=None,
        ge=1,
        allow_inf_nan=False,
        description="new / champion limit (>= 1); the same as max_relative_increase = ratio - 1.",
    )

    @model_validator(mode="after")
    def _check(self) -> Guardrail:
        limits = (self.max_relative_increase, self.max_absolute_increase, self.max_ratio)
        if all(limit is None for limit in limits):
            _raise_problems(
                "Guardrail",
                [((), "set max_relative_increase, max_absolute_increase or max_ratio")],
            )
        if self.max_relative_increase is not None and self.max_ratio is not None:
            # Two words for one limit (ratio = 1 + relative increase): which one meant it?
            _raise_problems(
                "Guardrail",
                [
                    (
                        ("max_ratio",),
                        f"says the same as max_relative_increase (max_ratio = 1 + "
                        f"max_relative_increase); set only one, e.g. max_ratio: "
                        f"{1 + self.max_relative_increase:g}",
                    )
                ],
            )
        return self


def _default_guardrails() -> tuple[Guardrail, ...]:
    return (
        Guardrail(name="error_rate", max_absolute_increase=0.01),
        Guardrail(name="p99_latency_ms", max_ratio=1.5),
    )


class Metrics(_Model):
    """The primary metric and the guardrails."""

    primary: PrimaryMetric = Field(
        default_factory=lambda: PrimaryMetric(name="accuracy"),
        description="Decides promotion; default: accuracy from labels.",
    )
    guardrails: tuple[Guardrail, ...] = Field(
        default_factory=_default_guardrails,
        description="Checked at every ramp step; default: error rate +0.01, p99 latency x1.5.",
    )

    @model_validator(mode="after")
    def _check(self) -> Metrics:
        names = [g.name for g in self.guardrails]
        _raise_problems(
            "Metrics",
            [
                (("guardrails", i, "name"), f"duplicate guardrail {name!r}")
                for i, name in enumerate(names)
                if name in names[:i]
            ],
        )
        return self


class Statistics(_Model):
    """How the analysis tests the primary metric."""

    alpha: float = Field(
        default=0.05, gt=0, le=0.5, strict=True, description="False-positive rate per test."
    )
    test: Literal["welch"] = Field(
        default="welch", description="Welch's t-test on sufficient statistics."
    )
    sequential: Flag = Field(
        default=True, description="Confidence sequences that stay valid under peeking."
    )
    tuning_n: int = Field(
        default=5000, gt=0, strict=True, description="Planned samples per arm (tunes sequential)."
    )
    min_samples: int = Field(
        default=200, ge=1, strict=True, description="Samples per arm before any verdict."
    )
    mde: float = Field(
        default=0.02,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="Minimum detectable effect on the primary metric's scale: relative to the "
        "champion (0.02 = 2 %), or in the metric's units when it reports absolute differences.",
    )
    power: float = Field(
        default=0.8, gt=0, lt=1, strict=True, description="Power wanted at the MDE."
    )
    correction: Literal["holm", "benjamini_hochberg", "none"] = Field(
        default="holm", description="Multiple-testing correction across metrics and variants."
    )
    shadow_margin: float = Field(
        default=0.01,
        ge=0,
        lt=1,
        strict=True,
        allow_inf_nan=False,
        description="Non-inferiority margin of the shadows' paired test, in accuracy points "
        "(0.01 = one point): a shadow is shown non-inferior when the lower end of the "
        "difference shadow - live is above -margin.",
    )
    drift_psi_threshold: float = Field(
        default=0.2,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="PSI above which a feature or the predictions count as drifted.",
    )
    drift_min_samples: int = Field(
        default=200,
        ge=1,
        strict=True,
        description="Sampled requests per variant before a drift alert can fire.",
    )
    drift_lookback_s: int = Field(
        default=3600,
        ge=1,
        strict=True,
        description=(
            "Drift is judged on the stats windows that started in the last this many seconds, "
            "so an alert follows the traffic of now, not the experiment's whole history."
        ),
    )


RampTest = Literal["msprt", "confidence_sequence", "group_sequential"]

LABEL_METRIC = "accuracy"
"""The metric label feedback is recorded as when the primary metric has another source
(the gateway's feedback kinds, ``gateway/live.py``)."""

PROMOTION_PERCENT = 100.0
"""A step of 100 % in a plan is the promotion, never a weight the canary serves
before the promotion evidence holds."""


@functools.lru_cache(maxsize=64)
def _served_steps(steps: tuple[float, ...]) -> tuple[float, ...]:
    # Cached: the policy asks at every check, and simulations check a million times.
    served = tuple(float(s) for s in steps)
    return served[:-1] if served and served[-1] >= PROMOTION_PERCENT else served


MirrorShare = Annotated[float, Field(gt=0, le=1, strict=True, allow_inf_nan=False)]


class ShadowPhase(_Model):
    """The ramp's first phase: the candidate is mirrored as a shadow, serving no user,
    and judged against the live model on the same labelled requests (a paired test).

    Only a label-scored proportion (a prediction is right or wrong once its label
    comes back) can be judged in shadow: both answers of a request are scored
    against one label. A reward or value is caused by the answer the user saw, so
    it stays with the exposed steps.
    """

    mirror: MirrorShare = Field(
        default=1.0,
        description="Share of units whose requests are mirrored to the candidate during the "
        "phase, in (0, 1] (the shadow's sample_rate).",
    )
    metric: Name | None = Field(
        default=None,
        description="The label-scored metric the gate judges; default and only choice today: "
        "the primary metric, when it is a proportion from labels (accuracy).",
    )
    min_labels: int = Field(
        default=300,
        ge=1,
        strict=True,
        description="Least labelled requests scored for both models before the gate decides.",
    )
    max_duration_s: float = Field(
        default=3600,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description="Longest the phase may run; a candidate not shown non-inferior by then "
        "expires (the plan's on_expiry).",
    )
    rollback_on: Literal["worse", "beyond_margin"] = Field(
        default="worse",
        description="What rolls the candidate back before any user sees it: worse (shown "
        "less accurate than the live model at all) or beyond_margin (shown worse by more "
        "than non_inferiority_margin, as the exposed steps' harm rule).",
    )


class Ramp(_Model):
    """The canary ramp plan: traffic steps, the evidence each larger step must buy,
    and what promotes, rolls back or ends the ramp."""

    variant: Name | None = Field(
        default=None,
        description="Variant to ramp (not the champion); default: the variant with role canary.",
    )
    shadow: ShadowPhase | None = Field(
        default=None,
        description="A shadow phase before the first step: the candidate serves 0 % while "
        "mirrored, and a paired test on labelled requests decides whether users see it.",
    )
    steps: tuple[Number, ...] = Field(
        min_length=1,
        description=(
            "Strictly increasing percents of traffic the canary serves, each in (0, 100). "
            "A last step of 100 is accepted and means the promotion: the canary gets 100 % "
            "only when it is promoted, never as a step before the evidence holds."
        ),
    )
    min_duration_s: Seconds = Field(default=30, description="Least time spent at each step.")
    min_samples: int = Field(
        default=200, ge=0, strict=True, description="Least canary requests at each step."
    )
    check_interval_s: float = Field(
        default=5, gt=0, strict=True, allow_inf_nan=False, description="Time between checks."
    )
    max_duration_s: float = Field(
        default=3600,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description=(
            "Longest the whole ramp may run; a canary not shown good enough by then "
            "expires (see on_expiry)."
        ),
    )
    on_expiry: Literal["rollback", "hold"] = Field(
        default="rollback",
        description=(
            "What an expired ramp does: rollback (canary to 0 %) or hold (weights stay "
            "where they are for a person to decide with `abgate promote` or `rollback`)."
        ),
    )
    on_srm: Literal["hold", "rollback"] = Field(
        default="hold", description="What a sample-ratio mismatch does to the ramp."
    )
    non_inferiority_margin: float = Field(
        default=0.01,
        gt=0,
        strict=True,
        allow_inf_nan=False,
        description=(
            "Largest relative drop of the primary metric that still counts as not worse: "
            "a canary shown worse by more is rolled back, and promotion needs evidence "
            "that it is not."
        ),
    )
    promote_on: Literal["non_inferiority", "superiority", "no_harm"] = Field(
        default="non_inferiority",
        description=(
            "Evidence the promotion needs at the last served step: non_inferiority (the "
            "primary metric shown within the margin of the champion's), superiority "
            "(shown better), or no_harm (the step's minimum time and samples, no harm "
            "shown: weak, an underpowered ramp promotes a worse model)."
        ),
    )
    test: RampTest = Field(
        default="confidence_sequence",
        description=(
            "How the primary metric is monitored: confidence_sequence (always valid, tuned "
            "to statistics.tuning_n), msprt (a mixture sequential test scaled to the "
            "margin) or group_sequential (alpha spent over 10 planned looks, the last one "
            "final). docs/ramp.md compares them."
        ),
    )

    @property
    def served_steps(self) -> tuple[float, ...]:
        """The weights the canary serves before promotion: ``steps`` without a final 100."""
        return _served_steps(self.steps)

    @model_validator(mode="after")
    def _check(self) -> Ramp:
        problems: list[tuple[Loc, str]] = []
        for i, step in enumerate(self.steps):
            if not 0 < step <= PROMOTION_PERCENT:
                problems.append((("steps", i), f"must be a percent in (0, 100], got {step:g}"))
            elif i and step <= self.steps[i - 1]:
                problems.append(
                    (
                        ("steps", i),
                        f"steps must increase strictly: {self.steps[i - 1]:g} then {step:g}",
                    )
                )
        if not problems and not self.served_steps:
            problems.append(
                (
                    ("steps",),
                    "needs a step below 100: 100 is the promotion, not a step the canary "
                    "serves first",
                )
            )
        if self.max_duration_s < self.min_duration_s:
            problems.append(
                (("max_duration_s",), f"must be at least min_duration_s ({self.min_duration_s:g})")
            )
        _raise_problems("Ramp", problems)
        return self


class ExperimentConfig(_Model):
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
        token = _PROTOCOL.set(protocol if isinstance(protocol, str) else None)
        try:
            return handler(data)
        finally:
            _PROTOCOL.reset(token)

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
        _raise_problems("ExperimentConfig", _cross_field_problems(self))
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


def _cross_field_problems(config: ExperimentConfig) -> list[tuple[Loc, str]]:
    """Findings that need more than one field, each at the path of its most relevant field."""
    problems: list[tuple[Loc, str]] = []
    variants = config.variants

    champions = [i for i, v in enumerate(variants) if v.role == "champion"]
    if not champions:
        problems.append((("variants",), "exactly one variant must have role champion; none has"))
    for i in champions[1:]:
        problems.append(
            (
                ("variants", i, "role"),
                f"exactly one champion allowed; variants.{champions[0]} is one",
            )
        )
    canaries = [i for i, v in enumerate(variants) if v.role == "canary"]
    for i in canaries[1:]:
        problems.append(
            (("variants", i, "role"), f"at most one canary allowed; variants.{canaries[0]} is one")
        )

    total = math.fsum(v.weight for v in variants)
    if abs(total - 100) > WEIGHT_SUM_TOLERANCE:
        parts = " + ".join(f"{v.name} {v.weight:.10g}" for v in variants)
        problems.append(
            (
                ("variants", len(variants) - 1, "weight"),
                f"weights must sum to 100, got {total:.10g} ({parts})",
            )
        )

    seen: dict[str, str] = {}
    members: list[tuple[str, int, str]] = [("variants", i, v.name) for i, v in enumerate(variants)]
    members += [("shadows", i, s.name) for i, s in enumerate(config.shadows)]
    for group, i, name in members:
        if name in seen:
            problems.append(((group, i, "name"), f"duplicate name {name!r} (also {seen[name]})"))
        else:
            seen[name] = f"{group}.{i}.name"

    served: dict[str, tuple[str, str]] = {}
    entries: list[tuple[str, int, Variant | Shadow]] = [
        ("variants", i, v) for i, v in enumerate(variants)
    ]
    entries += [("shadows", i, s) for i, s in enumerate(config.shadows)]
    named = config.protocol in NAMED_MODEL_PROTOCOLS
    for group, i, entry in entries:
        problems += _protocol_problems(config, group, i, entry)
        # One server may serve several versions under different model names.
        upstream = (entry.upstream_model or config.model) if named else ""
        for k, url in enumerate(entry.endpoints):
            version, where = served.setdefault(
                f"{url} {upstream}", (entry.model_version, f"{group}.{i}")
            )
            if version != entry.model_version:
                what = f"{url} (model {upstream})" if named else url
                problems.append(
                    (
                        (group, i, "endpoints", k),
                        f"{what} already serves model version {version} ({where})",
                    )
                )

    if config.ramp is not None:
        problems += _ramp_problems(config)

    unit_header = config.unit.name if config.unit.source == "header" else None
    if (
        config.override.enabled
        and unit_header is not None
        and unit_header.lower() == config.override.header.lower()
    ):
        problems.append(
            (("override", "header"), f"{config.override.header} is already the unit header")
        )
    return problems


def _protocol_problems(
    config: ExperimentConfig, group: str, i: int, entry: Variant | Shadow
) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    if entry.upstream_model is not None and config.protocol not in NAMED_MODEL_PROTOCOLS:
        problems.append(
            (
                (group, i, "upstream_model"),
                f"only used with protocol {' or '.join(NAMED_MODEL_PROTOCOLS)} (their paths "
                f"name the model); this experiment's protocol is {config.protocol}",
            )
        )
    return problems


def _ramp_problems(config: ExperimentConfig) -> list[tuple[Loc, str]]:
    return _ramp_variant_problems(config) + _shadow_phase_problems(config)


def _ramp_variant_problems(config: ExperimentConfig) -> list[tuple[Loc, str]]:
    assert config.ramp is not None
    name = config.ramp.variant
    names = [v.name for v in config.variants]
    if name is None:
        message = "no variant to ramp: name one, or give exactly one variant the role canary"
        return [(("ramp", "variant"), message)]
    if config.ramp.shadow is not None and config.in_shadow_phase:
        return []  # the candidate in its shadow phase: mirrored, not yet a variant
    if name not in names:
        hint = difflib.get_close_matches(name, names, n=1)
        expected = f"did you mean {hint[0]!r}?" if hint else f"expected one of: {', '.join(names)}"
        if any(s.name == name for s in config.shadows):
            return [
                (
                    ("ramp", "variant"),
                    f"{name!r} is a shadow, not a live variant; {expected} (or add ramp.shadow "
                    "to start the ramp with a shadow phase)",
                )
            ]
        return [(("ramp", "variant"), f"{name!r} is not a variant; {expected}")]
    if config.variant(name).role == "champion":
        return [(("ramp", "variant"), f"{name!r} is the champion; ramp a challenger or canary")]
    return []


def _shadow_phase_problems(config: ExperimentConfig) -> list[tuple[Loc, str]]:
    """A shadow gate only on what a shadow can measure: a proportion scored from labels."""
    assert config.ramp is not None
    phase = config.ramp.shadow
    if phase is None:
        return []
    primary = config.metrics.primary
    labels = primary.name if primary.source == "label" else LABEL_METRIC
    metric = phase.metric or labels
    where: Loc = ("ramp", "shadow", "metric")
    if metric == primary.name and primary.source != "label":
        return [
            (
                where,
                f"a shadow cannot measure {metric!r} (source {primary.source}): it is caused "
                "by the answer the user saw, so it stays with the exposed steps; judge the "
                f"shadow phase on the labels' {LABEL_METRIC!r} instead",
            )
        ]
    if metric != labels:
        return [
            (
                where,
                f"{metric!r} is not recorded per shadow: a shadow's answers are scored against "
                f"labels, recorded as {labels!r}",
            )
        ]
    if primary.source == "label" and (
        primary.kind != "proportion" or primary.direction != "increase"
    ):
        return [
            (
                where,
                f"{metric!r} is scored from labels as right or wrong: a shadow gate needs it "
                "as a proportion whose direction is increase",
            )
        ]
    return []


def validate_experiment(data: Mapping[str, Any]) -> ExperimentConfig:
    """Validate plain data (e.g. the stored JSON form); ``ConfigError`` lists every problem."""
    try:
        return ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems = [str(problem) for problem in validation_problems(exc)]
        raise ConfigError("; ".join(problems), problems) from exc


class Problem(NamedTuple):
    """One validation finding: the field path and what was expected there."""

    loc: Loc
    message: str

    @property
    def path(self) -> str:
        """Dotted field path, e.g. ``variants.1.weight``."""
        return ".".join(str(part) for part in self.loc)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.loc else self.message


def validation_problems(exc: ValidationError) -> list[Problem]:
    """The findings of a pydantic error, in words an ML platform engineer reads quickly."""
    errors = exc.errors()
    locs = [tuple(err["loc"]) for err in errors]
    return [
        Problem(loc, _describe(err))
        for loc, err in zip(locs, errors, strict=True)
        # pydantic counts only the valid items of a list: an invalid item also
        # reads as "too short", which would send people to the wrong field.
        if not (err["type"] == "too_short" and any(o[: len(loc)] == loc != o for o in locs))
    ]


def _describe(err: ErrorDetails) -> str:
    kind, message, value = err["type"], err["msg"], err.get("input")
    ctx = err.get("ctx") or {}
    if kind == CONFIG_ERROR_TYPE:
        return message
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return _unknown_field(err["loc"])
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields, got {_shown(value)}"
    if kind in ("tuple_type", "list_type"):
        return f"expected a list, got {_shown(value)}"
    if kind == "too_short":
        return f"expected at least {ctx.get('min_length')} item(s), got {_shown(value)}"
    if kind == "string_too_short" and ctx.get("min_length") == 1:
        return "must not be empty"
    message = message.removeprefix("Value error, ")
    for subject in ("Input", "String", "Tuple", "List"):
        message = message.replace(f"{subject} should be ", "must be ", 1)
        message = message.replace(f"{subject} should have ", "must have ", 1)
    return f"{message}, got {_shown(value)}"


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _unknown_field(loc: tuple[str | int, ...]) -> str:
    model = _model_at(loc[:-1])
    key = str(loc[-1])
    if model is None:
        return "unknown field"
    fields = list(model.model_fields)
    hint = difflib.get_close_matches(key, fields, n=1)
    if hint:
        return f"unknown field {key!r}; did you mean {hint[0]!r}?"
    return f"unknown field {key!r}; expected one of: {', '.join(fields)}"


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class whose fields sit at ``loc`` (list indexes skipped)."""
    model: type[BaseModel] = ExperimentConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        found = _model_in(field.annotation) if field is not None else None
        if found is None:
            return None
        model = found
    return model


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
