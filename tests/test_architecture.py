"""The layers of abgate, and a check that every import of the product points down.

Bottom to top (docs/architecture.md draws the same table and the three flows):

    layer  package(s)                 what lives there
    -----  -------------------------  ---------------------------------------------------
    1      analysis                   pure statistics on sufficient statistics
    2      core                       errors, settings, logs, tracing, HTTP error bodies,
                                      the Redis schema and the one package that talks to Redis
    3      experiments, model_workers experiment configs (pure); model registry and worker
    4      recorded                   what was recorded, read back from Redis for analysis
    5      gateway, ramp              the routing gateway; the canary ramp
    6      abgate                     the application: CLI, up, demo, loadgen, processes,
                                      embedded Redis

A module may import its own package and any package of a lower layer (plus the standard
library and third-party packages), never a package of its own layer or one above: so
``gateway`` and ``ramp`` do not import each other, nor ``experiments`` and
``model_workers``, and nothing below ``abgate`` imports the application.

Every import statement counts, including those inside functions and under
``TYPE_CHECKING``: a deferred import is still an arrow in the picture.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Package -> layer, bottom (1) to top (6). Packages sharing a number are one layer and
# must not import each other.
LAYERS: dict[str, int] = {
    "analysis": 1,
    "core": 2,
    "experiments": 3,
    "model_workers": 3,
    "recorded": 4,
    "gateway": 5,
    "ramp": 5,
    "abgate": 6,
}


@dataclass(frozen=True)
class BackImport:
    """One import that runs against the layering."""

    path: str  # relative to the repository root
    line: int
    imported: str
    rule: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: imports {self.imported}: {self.rule}"


def _package_of(path: str) -> str:
    return path.split("/", 1)[0]


def _absolute(node: ast.ImportFrom, path: str) -> str:
    """The module an ``ImportFrom`` names, with relative imports resolved against ``path``."""
    if node.level == 0:
        return node.module or ""
    parts = path.removesuffix(".py").split("/")
    # `from . import x` in a/b/c.py is relative to a.b; in a/b/__init__.py, also to a.b.
    base = parts[: len(parts) - node.level]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports_of(source: str, path: str) -> list[tuple[int, str]]:
    """(line, module) of every import in ``source``, the module of ``path``."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, _absolute(node, path)))
    return found


def back_imports(source: str, path: str) -> list[BackImport]:
    """The imports of the module at ``path`` (e.g. ``core/http.py``) that break a layer rule."""
    package = _package_of(path)
    layer = LAYERS[package]
    broken: list[BackImport] = []
    for line, module in imports_of(source, path):
        target = module.split(".", 1)[0]
        if target == package or target not in LAYERS:
            continue  # itself, the standard library or a third-party package
        if LAYERS[target] > layer:
            rule = (
                f"{package} (layer {layer}) may not import {target} (layer {LAYERS[target]}, "
                "above it)"
            )
        elif LAYERS[target] == layer:
            rule = f"{package} and {target} are one layer ({layer}) and may not import each other"
        else:
            continue
        broken.append(BackImport(path, line, module, rule))
    return broken


def product_modules() -> list[Path]:
    """Every module of the product packages (the folders named in ``LAYERS``)."""
    return sorted(path for package in LAYERS for path in (ROOT / package).rglob("*.py"))


def test_every_product_package_has_a_layer() -> None:
    packages = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    # Not shipped (tests, benchmarks): they may import anything.
    unshipped = {"tests", "bench"}
    shipped = packages - unshipped
    assert shipped == set(LAYERS), (
        f"top-level packages without a layer in LAYERS: {sorted(shipped - set(LAYERS))}; "
        f"layers naming no package: {sorted(set(LAYERS) - shipped)}"
    )


def test_every_import_of_the_product_points_down() -> None:
    modules = product_modules()
    assert len(modules) > 100, "the product's modules were not found"
    broken: list[BackImport] = []
    for path in modules:
        relative = path.relative_to(ROOT).as_posix()
        broken += back_imports(path.read_text(), relative)
    assert not broken, "imports against the layering:\n" + "\n".join(map(str, broken))


def test_a_back_import_is_reported_with_its_file_line_and_rule() -> None:
    source = '"""A core module that reaches up."""\n\nimport json\n\nfrom gateway.app import X\n'
    (found,) = back_imports(source, "core/x.py")
    assert str(found) == (
        "core/x.py:5: imports gateway.app: core (layer 2) may not import gateway "
        "(layer 5, above it)"
    )


def test_imports_inside_functions_and_relative_ones_count() -> None:
    source = (
        "from . import store\n"  # core.sub itself: fine
        "def late():\n"
        "    from ...recorded import reporting\n"  # resolved: recorded, above core
        "    import abgate.cli\n"
    )
    found = back_imports(source, "core/sub/x.py")
    assert [(b.line, b.imported) for b in found] == [(3, "recorded"), (4, "abgate.cli")]


def test_one_layer_may_not_import_its_neighbour() -> None:
    (found,) = back_imports("from gateway.outcomes import OutcomeAggregator\n", "ramp/x.py")
    assert found.rule == "ramp and gateway are one layer (5) and may not import each other"
    assert back_imports("from recorded.reporting import render\n", "ramp/x.py") == []
