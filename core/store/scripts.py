"""The store's Lua scripts, read from ``lua/`` (what each does, its KEYS and ARGV, heads
its file).

A script that calls a library (``unit_sums``, ``score_answer``, ``count_feedback``:
Lua functions several scripts share) runs as one text, the libraries' code first.
Comment lines stay in the files: Redis gets the code (an EVAL sends the whole text).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

__all__ = [
    "EVENTS",
    "EXPIRE_FEEDBACK",
    "FEEDBACK",
    "FLUSH",
    "PUT_CONFIG",
    "REQUESTS",
    "SCRIPTS",
    "SHADOW_ANSWERS",
    "UNITS",
    "Lua",
]


@dataclass(frozen=True)
class Lua:
    """One script of the store: its name (its file's) and the code Redis runs."""

    name: str
    code: str


def _read(name: str) -> list[str]:
    text = files(__package__).joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")
    return [line for line in text.splitlines() if not line.lstrip().startswith("--")]


def _script(name: str, *libraries: str) -> Lua:
    return Lua(name, "\n".join(line for part in (*libraries, name) for line in _read(part)) + "\n")


# Counting one feedback needs the per-unit sums and the scoring of shadow answers.
_COUNT_FEEDBACK = ("unit_sums", "score_answer", "count_feedback")

FLUSH = _script("flush")
EVENTS = _script("events")
UNITS = _script("units", "unit_sums")
SHADOW_ANSWERS = _script("shadow_answers", "score_answer")
REQUESTS = _script("requests", *_COUNT_FEEDBACK)
FEEDBACK = _script("feedback", *_COUNT_FEEDBACK)
EXPIRE_FEEDBACK = _script("expire_feedback")
PUT_CONFIG = _script("put_config")

SCRIPTS = (FLUSH, EVENTS, UNITS, SHADOW_ANSWERS, REQUESTS, FEEDBACK, EXPIRE_FEEDBACK, PUT_CONFIG)
"""Every script a client runs (each client registers them once, as redis-py ``Script``)."""
