"""The documentation holds together: a short README, links that lead somewhere, tested examples.

Pure file reading, no processes. What is checked:

- README.md stays a front door: at most ``README_MAX_LINES`` lines.
- Every relative link in README.md, CHANGELOG.md and docs/*.md names an existing
  file, and its ``#anchor`` part a heading of that file (GitHub's slugs).
- Every fenced block of README.md except ```text diagrams sits right below a
  ``<!-- tested: tests/PATH.py::test_name -->`` marker naming a test that exists
  (so the example runs somewhere), or a ``<!-- needs: ... -->`` marker saying
  what outside service it needs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
README_MAX_LINES = 200

# Fences may be indented (inside list items); the info string says the language.
_FENCE = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
# [text](target) and ![alt](target); the target may carry a "title".
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
_MARKER = re.compile(
    r"^<!--\s*(?:tested:\s*(?P<file>[^\s:]+)::(?P<name>\w+)|needs:\s*\S.*?)\s*-->$"
)


class Block(NamedTuple):
    """A fenced code block: its info string and the line number (1-based) of its opening fence."""

    info: str
    line: int


def _docs() -> list[Path]:
    return [README, ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]


def _scan(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, line, role) of every line; role is prose, open, code or close."""
    fence: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        match = _FENCE.match(line)
        if fence is None:
            if match:
                fence = match["fence"]
                yield number, line, "open"
            else:
                yield number, line, "prose"
        elif (
            match
            and match["fence"][0] == fence[0]
            and len(match["fence"]) >= len(fence)
            and not match["info"].strip()
        ):
            fence = None
            yield number, line, "close"
        else:
            yield number, line, "code"


def _prose_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    return ((n, line) for n, line, role in _scan(text) if role == "prose")


def fenced_blocks(text: str) -> list[Block]:
    """Every fenced code block of a Markdown text, outermost only."""
    blocks: list[Block] = []
    for number, line, role in _scan(text):
        match = _FENCE.match(line)
        if role == "open" and match:
            blocks.append(Block(match["info"].strip(), number))
    return blocks


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped but - and _,
    each space a -. Markdown links and emphasis count by their text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    kept = "".join(ch for ch in text if ch.isalnum() or ch in "-_ ")
    return kept.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading anchor of a Markdown file; repeated headings get -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found: set[str] = set()
    for _, line in _prose_lines(path.read_text(encoding="utf-8")):
        match = _HEADING.match(line)
        if not match:
            continue
        slug = github_slug(match[2])
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(slug if count == 0 else f"{slug}-{count}")
    return found


def relative_links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every link in a Markdown file that stays in the repository."""
    links: list[tuple[int, str]] = []
    for number, line in _prose_lines(path.read_text(encoding="utf-8")):
        line = _INLINE_CODE.sub("", line)
        targets = [m[1] for m in _LINK.finditer(line)]
        reference = _REFERENCE.match(line)
        if reference:
            targets.append(reference[1])
        for target in targets:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE) or target.startswith("//"):
                continue  # http:, https:, mailto: ...: outside the repository
            links.append((number, target))
    return links


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with the relative links of one Markdown file, one line per problem."""
    problems: list[str] = []
    where = path.relative_to(root)
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            problems.append(f"{where}:{number}: {target}: no such file {file_part}")
            continue
        if not anchor:
            continue
        if dest.is_dir() or dest.suffix.lower() != ".md":
            problems.append(f"{where}:{number}: {target}: #{anchor} in a file without headings")
        elif anchor not in anchors(dest):
            problems.append(
                f"{where}:{number}: {target}: no heading #{anchor} in {dest.relative_to(root)}"
            )
    return problems


def marker_problems(text: str, root: Path = ROOT) -> list[str]:
    """What is wrong with the markers above the fenced blocks of a README text."""
    lines = text.splitlines()
    problems: list[str] = []
    for block in fenced_blocks(text):
        if block.info.split()[:1] == ["text"]:
            continue
        above = lines[block.line - 2].strip() if block.line >= 2 else ""
        marker = _MARKER.match(above)
        if marker is None:
            problems.append(
                f"README.md:{block.line}: ```{block.info} block without a "
                "<!-- tested: tests/PATH.py::test_name --> or <!-- needs: ... --> line above it"
            )
            continue
        if marker["file"] is None:
            continue  # needs: an outside service, said in words
        test_file = root / marker["file"]
        if not test_file.is_file():
            problems.append(
                f"README.md:{block.line}: {above}: {marker['file']} does not exist "
                "(the test that runs this block must be in the repository)"
            )
            continue
        defined = re.search(
            rf"^\s*(?:async\s+)?def\s+{re.escape(marker['name'])}\s*\(",
            test_file.read_text(encoding="utf-8"),
            re.MULTILINE,
        )
        if defined is None:
            problems.append(
                f"README.md:{block.line}: {above}: no `def {marker['name']}` in {marker['file']}"
            )
    return problems


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, (
        f"README.md has {len(lines)} lines, more than {README_MAX_LINES}: "
        "move reference material to docs/"
    )


@pytest.mark.parametrize("path", _docs(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    assert broken_links(path) == []


def test_readme_code_blocks_are_tested_or_say_what_they_need() -> None:
    problems = marker_problems(README.read_text(encoding="utf-8"))
    assert problems == [], "\n".join(problems)


# --- the checkers themselves, on small made-up inputs ---------------------------------------


def test_github_slugs() -> None:
    assert github_slug("Running in containers / Kubernetes") == "running-in-containers--kubernetes"
    assert github_slug("`abgate analyze`: the input schema") == "abgate-analyze-the-input-schema"
    assert github_slug("Why a default sample rate of 0.05") == "why-a-default-sample-rate-of-005"
    assert github_slug("Statistics, reports and `abgate analyze`") == (
        "statistics-reports-and-abgate-analyze"
    )
    assert github_slug("snake_case and kebab-case") == "snake_case-and-kebab-case"


def test_broken_links_are_found(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# Guide\n\n## Two words\n\n## Two words\n")
    page = tmp_path / "README.md"
    page.write_text(
        "[ok](docs/guide.md) [ok](docs/guide.md#two-words) [ok](docs/guide.md#two-words-1)\n"
        "[ok](#readme) [web](https://example.com/x.md) `[code](nowhere.md)`\n"
        "```sh\n[in a block](nowhere.md)\n```\n"
        "# Readme\n"
        "[gone](docs/missing.md) [bad anchor](docs/guide.md#three-words)\n"
    )
    problems = broken_links(page, root=tmp_path)
    assert len(problems) == 2, problems
    assert "no such file docs/missing.md" in problems[0]
    assert "no heading #three-words" in problems[1]


def test_markers_are_required(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text("def test_runs_it():\n    pass\n")
    text = (
        "```text\na diagram needs no marker\n```\n"
        "<!-- tested: tests/test_x.py::test_runs_it -->\n```sh\nmake demo\n```\n"
        "<!-- needs: an external Redis at REDIS_URL -->\n```sh\nabgate status\n```\n"
        "```python\nprint('no marker')\n```\n"
        "<!-- tested: tests/test_x.py::test_gone -->\n```sh\nmake test\n```\n"
        "<!-- tested: tests/test_missing.py::test_a -->\n```sh\nmake lint\n```\n"
    )
    problems = marker_problems(text, root=tmp_path)
    assert len(problems) == 3, problems
    assert "README.md:12: ```python block without" in problems[0]
    assert "no `def test_gone` in tests/test_x.py" in problems[1]
    assert "tests/test_missing.py does not exist" in problems[2]
