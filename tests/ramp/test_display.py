"""The ramp display's writer: the screen a terminal shows (pyte), and plain lines elsewhere."""

from __future__ import annotations

import io

import pyte

from ramp.display import RampDisplay
from ramp.policy import Decision, RampState
from tests.ramp.test_progress import PLAN, observation

WAIT = Decision("wait", "min_duration", "step 1: 1s of 3s")


def screen_of(written: str, columns: int = 100, rows: int = 50) -> list[str]:
    """The lines a VT100 terminal shows after ``written`` (a tty turns \\n into \\r\\n)."""
    screen = pyte.Screen(columns, rows)
    pyte.Stream(screen).feed(written.replace("\n", "\r\n"))
    return [line.rstrip() for line in screen.display]


def shown(lines: list[str]) -> list[str]:
    return [line for line in lines if line]


def live(**kwargs: object) -> tuple[RampDisplay, io.StringIO]:
    out = io.StringIO()
    display = RampDisplay(
        out, experiment="demo", plan=PLAN, log_path="out/ramp-demo.log", live=True,
        size=(100, 50), **kwargs,  # type: ignore[arg-type]
    )  # fmt: skip
    return display, out


def test_the_block_is_redrawn_in_place() -> None:
    display, out = live()
    display.write("ramping canary of demo: steps 10 → 50 → 100 %\n")
    state = RampState(0, 0.0, 0.0)
    for second in range(1, 8):
        display.update(state, observation(now=float(second)), WAIT)
    lines = shown(screen_of(out.getvalue()))
    assert lines[0] == "ramping canary of demo: steps 10 → 50 → 100 %"
    headers = [line for line in lines if line.startswith("ramp demo · canary")]
    assert len(headers) == 1, lines  # seven checks, one block
    assert "  time     7s in step (min 3s)   (ramp 7s, max 90s)" in lines
    assert lines[-1] == "  decision log: out/ramp-demo.log"
    assert len(lines) == 1 + 10
    assert out.getvalue().count("\x1b[10A") == 6  # each later check moved up over the block


def test_the_final_block_stays_and_the_ending_follows_it() -> None:
    display, out = live()
    state = RampState(1, 0.0, 5.0)
    display.update(state, observation(now=6.0), WAIT)
    display.write("\n")  # the old one-line display ended each step with a newline
    rollback = Decision("rollback", "non_inferiority", "canary worse by more than 2.0%")
    display.update(state, observation(now=7.0), rollback)
    display.write("\nROLLED BACK canary: canary worse by more than 2.0%\n")
    display.write("  report (md): out/demo-ramp-report.md\n")
    lines = screen_of(out.getvalue())
    block_end = lines.index("  decision log: out/ramp-demo.log")
    assert lines[block_end - 1] == "  → rollback (non_inferiority): canary worse by more than 2.0%"
    assert lines[block_end + 1 : block_end + 4] == [
        "",
        "ROLLED BACK canary: canary worse by more than 2.0%",
        "  report (md): out/demo-ramp-report.md",
    ]
    assert sum(line.startswith("ramp demo") for line in lines) == 1


def test_a_message_while_the_block_is_live_goes_above_it() -> None:
    display, out = live()
    state = RampState(0, 0.0, 0.0)
    display.update(state, observation(now=1.0), WAIT)
    display.write("note: something worth knowing")
    display.update(state, observation(now=2.0), WAIT)
    lines = shown(screen_of(out.getvalue()))
    assert lines[0] == "note: something worth knowing"
    assert lines[1].startswith("ramp demo · canary")
    assert len(lines) == 11


def test_lines_are_cut_to_the_terminal_width_so_nothing_wraps() -> None:
    display, out = live()
    display._size = (40, 50)
    state = RampState(0, 0.0, 0.0)
    for second in (1.0, 2.0, 3.0):
        display.update(state, observation(now=second), WAIT)
    lines = shown(screen_of(out.getvalue(), columns=40))
    assert len(lines) == 10 and all(len(line) <= 39 for line in lines)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_a_line_per_change_and_a_heartbeat() -> None:
    out, clock = io.StringIO(), Clock()
    display = RampDisplay(
        out, experiment="demo", plan=PLAN, log_path="out/ramp-demo.log", live=False, clock=clock
    )
    state = RampState(0, 0.0, 0.0)
    for second in range(25):  # one check a second, nothing changes
        clock.now = float(second)
        display.update(state, observation(now=float(second)), WAIT)
    samples = Decision("wait", "min_samples", "step 1: 50 of 100 samples")
    clock.now = 25.0
    display.update(state, observation(now=25.0), samples)
    display.write("\n")
    advance = Decision("advance", "gates_passed", "step 1 passed; next 50 %", weight=50.0)
    clock.now = 25.5
    display.update(state, observation(now=25.5), advance)
    clock.now = 26.0
    display.update(RampState(1, 0.0, 26.0), observation(now=26.0), WAIT)
    lines = out.getvalue().splitlines()
    assert lines[0] == "[demo] decision log: out/ramp-demo.log"
    assert [line.split(" | ")[1] for line in lines[1:4]] == [
        "0s in step (min 3s)",
        "10s in step (min 3s)",  # heartbeats: the same state, 10 s later
        "20s in step (min 3s)",
    ]
    assert lines[4].endswith("| wait (min_samples): step 1: 50 of 100 samples")
    assert lines[5].endswith("| advance (gates_passed): step 1 passed; next 50 %")
    assert lines[6].startswith("[demo] step 2/3 at 50 % | 0s in step")
    assert len(lines) == 7
    assert "\x1b" not in out.getvalue()
