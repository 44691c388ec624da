"""Writes a ramp's progress to its output: redrawn in place on a terminal, plain lines elsewhere.

On a terminal the display is one block (``render_block``) that each check
redraws over the previous one with ANSI cursor movement; the block of the
final decision stays on screen and whatever follows (the ending line, the
report paths) is written below it. Anywhere else (a pipe, a CI log, a file)
a line is written only when the step, the action or its rule changes, plus a
heartbeat at most every ``heartbeat_s`` while nothing changes.

The controller writes its other messages (start, resume, ending) to this
object as to a stream, so that they never land inside the live block.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any, TextIO

from experiments.ramp_plan import Ramp
from ramp.policy import Decision, Observation, RampState
from ramp.progress import change_key, is_final, render_block, render_line, render_shadow_line

__all__ = ["HEARTBEAT_S", "RampDisplay"]

HEARTBEAT_S = 10.0
_UP = "\x1b[{}A\r"  # cursor up n lines, to column 1
_CLEAR_LINE_END = "\x1b[K"
_CLEAR_BELOW = "\x1b[J"


class RampDisplay:
    """The progress output of one ramp, on ``stream``."""

    def __init__(
        self,
        stream: TextIO,
        *,
        experiment: str,
        plan: Ramp,
        log_path: str | None = None,
        live: bool | None = None,
        heartbeat_s: float = HEARTBEAT_S,
        clock: Callable[[], float] = time.monotonic,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.stream = stream
        self.experiment = experiment
        self.plan = plan
        self.log_path = log_path
        self.live = _is_terminal(stream) if live is None else live
        self.heartbeat_s = heartbeat_s
        self.clock = clock
        self._size = size
        self._block: list[str] = []  # the live block now on screen, empty once frozen
        self._last_key: tuple[int, str, str] | None = None
        self._last_line_at = 0.0
        self._announced = False

    # --- progress -------------------------------------------------------------

    def update(self, state: RampState, obs: Observation, decision: Decision) -> None:
        """Show one check's result."""
        if self.live:
            self._redraw(state, obs, decision)
        else:
            self._line(state, obs, decision)
        self.stream.flush()

    def update_shadow(self, state: RampState, obs: Any, decision: Decision) -> None:
        """Show one check of the shadow phase: a line when the action or rule changes,
        or at the heartbeat (live or not: the phase has no block to redraw)."""
        key = (-1, decision.action, decision.rule)
        now = self.clock()
        if key != self._last_key or now - self._last_line_at >= self.heartbeat_s:
            self.write(
                render_shadow_line(self.plan, state, obs, decision, experiment=self.experiment)
                + "\n"
            )
            self._last_key, self._last_line_at = key, now
        self.stream.flush()

    def _redraw(self, state: RampState, obs: Observation, decision: Decision) -> None:
        lines = render_block(
            self.plan, state, obs, decision, experiment=self.experiment, log_path=self.log_path
        )
        columns, rows = self._terminal_size()
        # A line as wide as the terminal wraps and a block taller than it scrolls:
        # either would move the cursor out of step with the line count.
        lines = [line[: max(columns - 1, 1)] for line in lines[: max(rows - 1, 1)]]
        self.stream.write(self._erase() + "".join(f"{line}{_CLEAR_LINE_END}\n" for line in lines))
        self._block = [] if is_final(decision) else lines

    def _line(self, state: RampState, obs: Observation, decision: Decision) -> None:
        if not self._announced and self.log_path:
            self.stream.write(f"[{self.experiment}] decision log: {self.log_path}\n")
        self._announced = True
        key = change_key(state, decision)
        now = self.clock()
        if key == self._last_key and now - self._last_line_at < self.heartbeat_s:
            return
        self.stream.write(
            render_line(self.plan, state, obs, decision, experiment=self.experiment) + "\n"
        )
        self._last_key, self._last_line_at = key, now

    def _erase(self) -> str:
        return (_UP.format(len(self._block)) + _CLEAR_BELOW) if self._block else ""

    def _terminal_size(self) -> tuple[int, int]:
        if self._size is not None:
            return self._size
        try:
            size = os.get_terminal_size(self.stream.fileno())
        except (AttributeError, OSError, ValueError):
            return 100, 40
        return size.columns or 100, size.lines or 40

    # --- the stream the controller writes its other messages to ----------------

    def write(self, text: str) -> int:
        """Write a message above the live block (or plainly when there is none)."""
        # Blank writes ended the one-line progress of old; lines need no such ending.
        if not text.strip():
            return len(text)
        if self.live and self._block:
            ended = text if text.endswith("\n") else text + "\n"
            redraw = "".join(f"{line}{_CLEAR_LINE_END}\n" for line in self._block)
            self.stream.write(self._erase() + ended + redraw)
        else:
            self.stream.write(text)
        return len(text)

    def flush(self) -> None:
        """Flush the underlying stream."""
        self.stream.flush()

    def isatty(self) -> bool:
        """Whether progress is drawn live (what callers used to ask the stream)."""
        return self.live


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
