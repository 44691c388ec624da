"""No module of the product is over ~500 lines: a module that grows past it is doing
several jobs, and is split by concern (docs/architecture.md).

Counted: every ``.py`` file of the product's packages (``tests/test_architecture.py``'s
layers) and of ``bench/``; the tests are not.
"""

from __future__ import annotations

from pathlib import Path

from tests.test_architecture import LAYERS, ROOT

MAX_LINES = 520  # "about 500": a few lines of slack, not a second module's worth


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def oversized(root: Path, limit: int = MAX_LINES) -> dict[str, int]:
    """Modules under ``root``'s product packages longer than ``limit`` lines."""
    found: dict[str, int] = {}
    for package in [*LAYERS, "bench"]:
        for path in sorted((root / package).rglob("*.py")):
            count = _lines(path)
            if count > limit:
                found[path.relative_to(root).as_posix()] = count
    return found


def test_no_module_of_the_product_is_over_about_500_lines() -> None:
    assert oversized(ROOT) == {}, "split these by concern"


def test_a_long_module_is_reported(tmp_path: Path) -> None:
    (tmp_path / "gateway").mkdir()
    (tmp_path / "gateway" / "big.py").write_text("x = 1\n" * (MAX_LINES + 1))
    (tmp_path / "gateway" / "fine.py").write_text("x = 1\n" * MAX_LINES)
    assert oversized(tmp_path) == {"gateway/big.py": MAX_LINES + 1}
