"""The field types of an experiment config: names, numbers and the frozen base model.

Each type carries its own check, so a bad value is reported at its field; the
checks that span fields live with the section that owns them.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from experiments.problems import problem

__all__ = [
    "HEADER_NAME",
    "ConfigModel",
    "Flag",
    "Fraction",
    "HeaderName",
    "Name",
    "Number",
    "Percent",
    "RegistryName",
    "Seconds",
    "TimeoutMs",
]

_MAX_TIMEOUT_MS = 600_000

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
# What the model registry accepts for model and version names.
_REGISTRY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# RFC 9110 token characters: what an HTTP header name may contain.
HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise problem(
            f"expected lowercase letters, digits, '_' or '-', starting with a letter or digit; "
            f"got {value!r}"
        )
    return value


def _check_registry_name(value: str) -> str:
    if not _REGISTRY_NAME.fullmatch(value):
        raise problem(
            f"expected letters, digits, '.', '_' or '-', starting with a letter or digit; "
            f"got {value!r}"
        )
    return value


def _check_header_name(value: str) -> str:
    if not HEADER_NAME.fullmatch(value):
        raise problem(f"expected an HTTP header name (letters, digits, '-', ...); got {value!r}")
    return value


Name = Annotated[str, Field(min_length=1, max_length=63), AfterValidator(_check_name)]
RegistryName = Annotated[
    str, Field(min_length=1, max_length=64), AfterValidator(_check_registry_name)
]
HeaderName = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(_check_header_name)]
Percent = Annotated[float, Field(ge=0, le=100, strict=True, allow_inf_nan=False)]
# Range checked by the model, so that one bad ramp step does not hide the others.
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Fraction = Annotated[float, Field(ge=0, le=1, strict=True, allow_inf_nan=False)]
TimeoutMs = Annotated[int, Field(gt=0, le=_MAX_TIMEOUT_MS, strict=True)]
Seconds = Annotated[float, Field(ge=0, strict=True, allow_inf_nan=False)]
Flag = Annotated[bool, Field(strict=True)]


class ConfigModel(BaseModel):
    """A section of an experiment config: frozen, and unknown fields are refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")
