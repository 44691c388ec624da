"""How requests reach the variants: the unit hashed, the layout of units over the
variants, the namespace shared with other experiments, the override header and the
fallback to the champion."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from experiments.fields import HEADER_NAME, ConfigModel, Flag, Fraction, HeaderName
from experiments.problems import Loc, raise_problems

__all__ = [
    "AssignmentRules",
    "Fallback",
    "FallbackTrigger",
    "Namespace",
    "Override",
    "Unit",
    "UnitSource",
]

UnitSource = Literal["request_id", "header", "json_field"]
FallbackTrigger = Literal["connect_error", "timeout", "5xx"]


class Unit(ConfigModel):
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
        elif self.source == "header" and not HEADER_NAME.fullmatch(self.name):
            problems.append((("name",), f"expected an HTTP header name; got {self.name!r}"))
        raise_problems("Unit", problems)
        return self


class AssignmentRules(ConfigModel):
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


class Namespace(ConfigModel):
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
            raise_problems(
                "Namespace",
                [(("end",), f"must be above start ({self.start:g}), got {self.end:g}")],
            )
        return self

    def overlaps(self, other: Namespace) -> bool:
        """Whether some unit can be in both (always, for different ids: they hash apart)."""
        return self.id != other.id or (self.start < other.end and other.start < self.end)


class Override(ConfigModel):
    """A request header that forces a variant by name (for QA); off by default."""

    enabled: Flag = Field(default=False, description="Honour the override header.")
    header: HeaderName = Field(
        default="X-Abgate-Variant", description="Header whose value names the variant to use."
    )


class Fallback(ConfigModel):
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
        raise_problems("Fallback", problems)
        return self
