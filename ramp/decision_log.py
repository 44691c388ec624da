"""The ramp's decision log: every decision with its evidence, one JSON object per line.

The file is the record a person reads after (or while) a ramp runs, so the
console can show the live display instead of a record per check. Lines have
the shape of ``ABGATE_LOG_FORMAT=json`` records (``ts``, ``level``,
``logger``, ``process``, ``msg``, then the fields). The file is opened for
each record and appended to, so a resumed ramp continues the same log and
nothing is held open between checks.
"""

from __future__ import annotations

import logging
from pathlib import Path

from core.logs import JsonFormatter

__all__ = ["DecisionLog"]


class DecisionLog:
    """Appends log records to ``path`` as JSON lines."""

    def __init__(self, path: Path, process: str = "ramp") -> None:
        self.path = path
        self._formatter = JsonFormatter(process)

    def append(self, record: logging.LogRecord) -> None:
        """Write one record (the folder is created on first use)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(self._formatter.format(record) + "\n")
