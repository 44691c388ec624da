"""The directory where the server processes of one gateway publish their figures.

One file per process, ``<pid>.json``, replaced whole (written beside it, then
renamed) so a reader never sees half a file. When the supervisor reaps a
process it renames the file ``dead-<pid>-<ns>.json``: its counters still count,
its gauges no longer do (``gateway.process_figures.combine``). The directory
belongs to one gateway run: ``prepare`` empties it at start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
from pathlib import Path

import orjson

from gateway.process_figures import ProcessFigures

__all__ = ["mark_process_dead", "prepare", "publish", "read_all"]

log = logging.getLogger("abgate.metrics")

_DEAD_PREFIX = "dead-"
SHARED_MEMORY = "/dev/shm"  # a tmpfs on Linux and in containers


def prepare(directory: str | None) -> Path:
    """The directory for a new gateway run, emptied of an earlier run's files.

    ``directory`` unset: a fresh temporary one (the caller removes it at exit),
    in shared memory where there is some: on ext4 replacing a file by a rename
    flushes its data to disk first (``auto_da_alloc``), about 5 ms a time.
    """
    if not directory:
        memory = SHARED_MEMORY if os.access(SHARED_MEMORY, os.W_OK) else None
        return Path(tempfile.mkdtemp(prefix="abgate-metrics-", dir=memory))
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.json"):
        stale.unlink(missing_ok=True)
    return path


def publish(directory: Path, figures: ProcessFigures) -> None:
    """Write one process's figures (replacing what it wrote before)."""
    final = directory / f"{figures.pid}.json"
    partial = directory / f".{figures.pid}.json.partial"
    try:
        partial.write_bytes(orjson.dumps(figures))  # orjson writes dataclasses natively
        os.replace(partial, final)
    except OSError as exc:  # a full disk must not break the gateway; the scrape shows less
        log.warning("cannot publish metrics to %s: %s", directory, exc)


def mark_process_dead(directory: Path, pid: int) -> None:
    """The process ``pid`` has exited: keep its counters, drop its gauges."""
    source = directory / f"{pid}.json"
    # pids are reused: the time keeps every dead process's file apart
    with contextlib.suppress(FileNotFoundError):
        os.replace(source, directory / f"{_DEAD_PREFIX}{pid}-{time.time_ns()}.json")


def read_all(directory: Path, *, skip_pid: int) -> list[ProcessFigures]:
    """Every published process's figures but ``skip_pid``'s (the reader's own, fresher)."""
    listed = set(directory.glob("*.json"))
    found = []
    live = set()
    for path in sorted(listed):
        dead = path.name.startswith(_DEAD_PREFIX)
        if not dead and path.stem == str(skip_pid):
            continue
        figures = _read(path)
        if figures is not None:
            figures.alive = not dead
            found.append(figures)
            if not dead:
                live.add(figures.pid)
    # A process reaped meanwhile: its file renamed under the listing (a directory read
    # is not atomic with a rename), read under its new name, or its counts would be
    # missing from this scrape.
    for path in sorted(set(directory.glob(f"{_DEAD_PREFIX}*.json")) - listed):
        figures = _read(path)
        if figures is not None and figures.pid not in live:
            figures.alive = False
            found.append(figures)
    return found


def _read(path: Path) -> ProcessFigures | None:
    try:
        return ProcessFigures.from_json(orjson.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        log.warning("unreadable metrics file %s: %s", path.name, exc)
        return None
