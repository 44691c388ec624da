"""How a problem of an experiment config is raised and worded for a person.

Checks that span fields raise every finding at once, each at its own field
path, as a pydantic error of type ``CONFIG_ERROR_TYPE``; ``describe`` turns
any pydantic error into words an ML platform engineer reads quickly, so the
loader can print ``FILE:LINE: field.path: problem``.
"""

from __future__ import annotations

import difflib
import typing
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

__all__ = ["CONFIG_ERROR_TYPE", "Loc", "Problem", "describe", "problem", "raise_problems"]

Loc = tuple[str | int, ...]

# The pydantic error type of every finding of the config's own checks, on fields or across
# them: its message is already in words and is shown as it is.
CONFIG_ERROR_TYPE = "experiment_config"


def problem(message: str) -> PydanticCustomError:
    """A finding to raise from a field check (pydantic reports it at the field)."""
    # The message goes in ctx: a template would misread braces in user values.
    return PydanticCustomError(CONFIG_ERROR_TYPE, "{message}", {"message": message})


def raise_problems(title: str, problems: list[tuple[Loc, str]]) -> None:
    """Raise every cross-field finding at once, each at its own field path."""
    if problems:
        details = [
            InitErrorDetails(type=problem(message), loc=loc, input=None)
            for loc, message in problems
        ]
        raise ValidationError.from_exception_data(title, details)


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


def describe(err: ErrorDetails, schema: type[BaseModel]) -> str:
    """One pydantic error in words; ``schema`` is the model validated (for field hints)."""
    kind, message, value = err["type"], err["msg"], err.get("input")
    ctx = err.get("ctx") or {}
    if kind == CONFIG_ERROR_TYPE:
        return message
    if kind == "missing":
        return "field required"
    if kind == "extra_forbidden":
        return _unknown_field(err["loc"], schema)
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


def _unknown_field(loc: tuple[str | int, ...], schema: type[BaseModel]) -> str:
    model = _model_at(loc[:-1], schema)
    key = str(loc[-1])
    if model is None:
        return "unknown field"
    fields = list(model.model_fields)
    hint = difflib.get_close_matches(key, fields, n=1)
    if hint:
        return f"unknown field {key!r}; did you mean {hint[0]!r}?"
    return f"unknown field {key!r}; expected one of: {', '.join(fields)}"


def _model_at(loc: tuple[str | int, ...], schema: type[BaseModel]) -> type[BaseModel] | None:
    """The model class whose fields sit at ``loc`` (list indexes skipped)."""
    model: type[BaseModel] = schema
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
