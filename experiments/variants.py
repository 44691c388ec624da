"""The models an experiment routes to: live variants, which serve a share of the traffic,
and shadows, which get a mirrored copy of requests."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from experiments.endpoints import Endpoint
from experiments.fields import ConfigModel, Fraction, Name, Percent, RegistryName, TimeoutMs
from experiments.problems import Loc, raise_problems

__all__ = ["Role", "Shadow", "Variant"]

Role = Literal["champion", "challenger", "canary"]


def _unique_endpoints(endpoints: tuple[str, ...]) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for i, url in enumerate(endpoints):
        if url in endpoints[:i]:
            first = endpoints.index(url)
            problems.append((("endpoints", i), f"duplicate endpoint {url} (endpoints.{first})"))
    return problems


class Variant(ConfigModel):
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
        raise_problems("Variant", _unique_endpoints(self.endpoints))
        return self


class Shadow(ConfigModel):
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
        raise_problems("Shadow", _unique_endpoints(self.endpoints))
        return self
