"""Experiment files in and out: YAML with ``FILE:LINE: field.path: problem`` for every problem.

The YAML is composed into nodes (PyYAML's node API) and turned into plain
data here, so that every key and list item keeps its line, duplicate keys are
caught (PyYAML's own constructor silently keeps the last one) and keys are
read as written (YAML 1.1 would turn a bare ``on:`` key into ``True``).
Validation errors are then reported at the line of the field they are about.

Aliases are expanded while reading, so a few hundred bytes of nested aliases
("billion laughs") would expand into billions of nodes: the reader counts the
nodes aliases add and refuses the file past ``MAX_ALIAS_NODES``, at the line of
the alias, and refuses collections nested deeper than ``MAX_DEPTH``.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from typing import Any, NoReturn

import yaml
from pydantic import ValidationError
from yaml.constructor import ConstructorError, SafeConstructor

from core.errors import ConfigError
from experiments.config import ExperimentConfig, validate_experiment, validation_problems
from experiments.namespaces import Neighbour, routing_conflicts
from experiments.problems import Loc, Problem

__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "canonical_json",
    "dump_experiment",
    "experiment_from_json",
    "load_experiment",
    "load_experiment_beside",
    "parse_experiment",
]

MAX_CONFIG_BYTES = 1 << 20
# Nodes that aliases may add to a file, in all: an anchored variant list or
# endpoint block reused a few times stays far below; a YAML bomb passes it in
# milliseconds, before expansion costs anything.
MAX_ALIAS_NODES = 10_000
# Nesting of mappings and lists: experiment configs are a handful of levels deep;
# the bound keeps both PyYAML's recursive composer and this reader off Python's stack limit.
MAX_DEPTH = 64

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_FLOW_BRACKET = re.compile(r"[\[\]{}]")


def load_experiment(path: str | os.PathLike[str]) -> ExperimentConfig:
    """Read and validate one experiment file; ``ConfigError`` lists every problem."""
    return _parse(_read(os.fspath(path)), os.fspath(path))[0]


def load_experiment_beside(
    path: str | os.PathLike[str], others: Iterable[Neighbour]
) -> ExperimentConfig:
    """``load_experiment``, also refusing what ``others`` make unroutable (shared models).

    Each conflict is reported as ``FILE:LINE: field.path: problem`` at the
    field to change (``namespace``, ``model``, ...), like any other problem.
    """
    filename = os.fspath(path)
    config, reader = _parse(_read(filename), filename)
    conflicts = routing_conflicts(config, others)
    if conflicts:
        _fail(filename, [(reader.line_of(loc), str(Problem(loc, m))) for loc, m in conflicts])
    return config


def _read(filename: str) -> str:
    try:
        with open(filename, "rb") as file:
            raw = file.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{filename}: cannot read: {exc.strerror or exc}") from exc
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{filename}: over {MAX_CONFIG_BYTES} bytes: not an experiment config")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        _fail(filename, [(raw.count(b"\n", 0, exc.start) + 1, "not UTF-8 text")], exc)
    return text


def parse_experiment(text: str, filename: str = "<string>") -> ExperimentConfig:
    """Validate experiment YAML; ``filename`` only labels the problems."""
    return _parse(text, filename)[0]


def _parse(text: str, filename: str) -> tuple[ExperimentConfig, _NodeReader]:
    deep = _too_deep_flow(text)
    if deep is not None:
        line = text.count("\n", 0, deep) + 1
        _fail(filename, [(line, f"YAML nested over {MAX_DEPTH} levels deep")])
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        _fail(filename, [(line, f"YAML syntax error: {what}")], exc)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        _fail(filename, [(line, f"YAML syntax error: {exc.reason} (#x{exc.character:04x})")], exc)
    except yaml.YAMLError as exc:
        _fail(filename, [(1, f"YAML syntax error: {exc}")], exc)
    except RecursionError as exc:  # PyYAML composes nested collections recursively
        _fail(filename, [(1, f"YAML nested over {MAX_DEPTH} levels deep")], exc)
    if root is None:
        _fail(filename, [(1, "empty file: expected an experiment (name, model, variants, ...)")])
    reader = _NodeReader()
    try:
        data = reader.value(root, ())
    except _TooLarge as exc:
        _fail(filename, [*reader.problems, (exc.line, exc.message)])
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else repr(data)
        line = root.start_mark.line + 1
        _fail(filename, [(line, f"expected a mapping of experiment fields, got {found}")])
    problems = list(reader.problems)
    try:
        config = ExperimentConfig.model_validate(data)
    except ValidationError as exc:
        problems += [(reader.line_of(p.loc), str(p)) for p in validation_problems(exc)]
        _fail(filename, problems, exc)
    if problems:
        _fail(filename, problems)
    return config, reader


def dump_experiment(config: ExperimentConfig) -> str:
    """The config as YAML, defaults written out; ``parse_experiment`` reads it back equal."""
    data = config.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def canonical_json(config: ExperimentConfig) -> str:
    """The stored form: compact JSON with sorted keys, equal for equal configs."""
    data = config.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)


def experiment_from_json(text: str | bytes) -> ExperimentConfig:
    """Validate a stored config (``canonical_json`` or ``model_dump(mode="json")`` as JSON)."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"stored config is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"stored config is not a JSON object but {type(data).__name__}")
    return validate_experiment(data)


def _too_deep_flow(text: str) -> int | None:
    """Where flow brackets first nest over ``MAX_DEPTH`` (counted naively), if they do.

    PyYAML's scanner keeps a possible key per open bracket and scans ahead over all of
    them: thousands of ``[`` take seconds (quadratic) before composing fails. Brackets in
    quoted strings are counted too, which only errs on a config no one writes.
    """
    depth = 0
    for match in _FLOW_BRACKET.finditer(text):
        if match.group() in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif depth:
            depth -= 1
    return None


def _fail(
    filename: str, problems: list[tuple[int, str]], cause: BaseException | None = None
) -> NoReturn:
    lines = [f"{filename}:{line}: {text}" for line, text in sorted(problems, key=lambda p: p[0])]
    raise ConfigError("; ".join(lines), lines) from cause


class _TooLarge(Exception):
    """Reading stops: aliases expand too far, or collections nest too deep."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


class _NodeReader:
    """Plain data from YAML nodes, remembering the line of every key and list item."""

    def __init__(self) -> None:
        self.lines: dict[Loc, int] = {}
        self.problems: list[tuple[int, str]] = []
        self._scalars = SafeConstructor()
        self._open: set[int] = set()  # collections being read: an alias back to one recurses
        self._seen: set[int] = set()  # nodes read once: reading one again expands an alias
        self._read = 0  # nodes read, aliases expanded included
        self._alias: tuple[int, Loc] | None = None  # line and place of the alias being expanded

    def line_of(self, loc: Loc) -> int:
        """Line of the field at ``loc``, else of its nearest ancestor that exists."""
        for end in range(len(loc), -1, -1):
            line = self.lines.get(loc[:end])
            if line is not None:
                return line
        return 1

    def _problem(self, node: yaml.Node, loc: Loc, message: str) -> None:
        self.problems.append((node.start_mark.line + 1, str(Problem(loc, message))))

    def value(self, node: yaml.Node, loc: Loc) -> Any:
        """The plain value of ``node`` found at ``loc``."""
        self.lines.setdefault(loc, node.start_mark.line + 1)
        self._read += 1
        if id(node) not in self._seen:
            self._seen.add(id(node))
        elif self._alias is None:
            return self._expand(node, loc)
        elif self._read - len(self._seen) > MAX_ALIAS_NODES:
            # Everything read twice came through an alias: the file's own nodes are not counted.
            line, where = self._alias
            message = f"YAML aliases expand to over {MAX_ALIAS_NODES} nodes"
            raise _TooLarge(line, str(Problem(where, message)))
        if len(loc) > MAX_DEPTH:
            raise _TooLarge(node.start_mark.line + 1, f"YAML nested over {MAX_DEPTH} levels deep")
        if isinstance(node, yaml.ScalarNode):
            try:
                return self._scalars.construct_object(node)
            except ConstructorError as exc:
                self._problem(node, loc, f"unsupported YAML value: {exc.problem}")
                return None
        if id(node) in self._open:
            self._problem(node, loc, "recursive YAML alias")
            return None
        self._open.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode) and node.tag == _MAP_TAG:
                return self._mapping(node, loc)
            if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ_TAG:
                return self._sequence(node, loc)
            self._problem(node, loc, f"unsupported YAML tag {node.tag}")
            return None
        finally:
            self._open.discard(id(node))

    def _expand(self, node: yaml.Node, loc: Loc) -> Any:
        """Read a node again through an alias used at ``loc`` (a line of the file itself)."""
        self._alias = (self.line_of(loc), loc)
        try:
            self._read -= 1  # counted again inside, as the first node the alias adds
            return self.value(node, loc)
        finally:
            self._alias = None

    def _sequence(self, node: yaml.SequenceNode, loc: Loc) -> list[Any]:
        items = []
        for index, item in enumerate(node.value):
            self.lines[(*loc, index)] = item.start_mark.line + 1
            items.append(self.value(item, (*loc, index)))
        return items

    def _mapping(self, node: yaml.MappingNode, loc: Loc) -> dict[str, Any]:
        data: dict[str, Any] = {}
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                self._problem(key_node, loc, "YAML merge keys (<<) are not supported")
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self._problem(key_node, loc, "expected a field name as key")
                continue
            key = str(key_node.value)
            if key in first:
                self._problem(key_node, (*loc, key), f"duplicate key; first at line {first[key]}")
            else:
                first[key] = line
            # Like PyYAML, the last occurrence wins; errors then point at it.
            self.lines[(*loc, key)] = line
            data[key] = self.value(value_node, (*loc, key))
        return data
