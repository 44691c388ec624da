"""What `abgate ramp` shows, on a real terminal (a pseudo-terminal) and in a pipe.

Real Redis, workers, gateway and traffic (the fixtures of test_ramp_process):
on a terminal one block is redrawn in place and no log record reaches the
screen; in a pipe a line per change, not per check; with -v the decision log
on stderr too; and the decision log file holds every decision.
"""

from __future__ import annotations

import fcntl
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from itertools import groupby, pairwise
from pathlib import Path
from typing import Any

import orjson
import pyte
import pytest

from core.store import Store
from ramp.display import HEARTBEAT_S
from tests.ramp.test_ramp_process import setup, traffic  # noqa: F401 (setup is a fixture)

pytestmark = pytest.mark.integration

COLUMNS, ROWS = 150, 60
# A short max_duration bounds each run; a ramp that cannot show non-inferiority by then ends
# (rolled back or expired), which is as good an ending to watch as a promotion.
PLAN = {"min_duration": 2, "min_samples": 40, "p99_ratio": 50, "max_duration": 20}
ENDINGS = ("PROMOTED canary", "ROLLED BACK canary", "EXPIRED canary")


def check_ended(code: int, records: list[dict[str, Any]], output: str) -> None:
    """Exit 0 exactly when the last decision promoted; never an error or usage exit."""
    assert code not in (1, 2), output
    assert (code == 0) == (records[-1]["action"] == "promote"), output


def argv(config: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "abgate", "ramp", str(config), "--out", str(out), *extra]


def run_in_pipe(config: Path, out: Path, redis_url: str, *extra: str) -> Any:
    return subprocess.run(
        argv(config, out, *extra),
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "REDIS_URL": redis_url},
    )


def run_on_terminal(config: Path, out: Path, redis_url: str) -> tuple[int, str]:
    """Run with stdout and stderr on a pseudo-terminal; return the exit code and all it showed."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    child = subprocess.Popen(
        argv(config, out),
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env={**os.environ, "REDIS_URL": redis_url, "TERM": "xterm"},
    )
    os.close(slave)
    received = bytearray()
    deadline = time.monotonic() + 150
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child has exited and closed the terminal
                break
            if not chunk:
                break
            received += chunk
        else:
            child.kill()
            pytest.fail(f"the ramp did not end in time; shown so far:\n{received.decode()}")
        return child.wait(timeout=30), received.decode()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=30)
        os.close(master)


def decisions(out: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (out / "ramp-demo.log").read_text().splitlines()]


def runs(records: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """Consecutive checks with the same step, action and rule, as one entry each."""
    return [key for key, _ in groupby((r["step"], r["action"], r["rule"]) for r in records)]


def test_on_a_terminal_one_block_is_redrawn_in_place(setup, redis_url, tmp_path) -> None:  # noqa: F811
    config, gateway = setup(**PLAN)
    out = tmp_path / "out"
    with traffic(gateway.url):
        code, shown = run_on_terminal(config, out, redis_url)
    assert "ramp decision" not in shown and "abgate.ramp" not in shown
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.Stream(screen).feed(shown)
    lines = [line.rstrip() for line in screen.display]
    assert sum(line.startswith("ramp demo · canary") for line in lines) == 1, "\n".join(lines)
    records = decisions(out)
    check_ended(code, records, shown)
    assert len(records) >= 4  # at least a few checks per step: several redraws
    assert len(re.findall(r"\x1b\[\d+A", shown)) >= len(records) - len(runs(records))
    log_line = lines.index(f"  decision log: {out / 'ramp-demo.log'}")
    last = records[-1]
    assert lines[log_line - 1].startswith(f"  → {last['action']} ({last['rule']}): ")
    # The final block stays; below it a blank line, the ending and the report paths.
    assert lines[log_line + 1] == ""
    assert lines[log_line + 2].startswith(ENDINGS)
    assert lines[log_line + 3].startswith("  report (")


def test_in_a_pipe_a_line_per_change_not_per_check(setup, redis_url, tmp_path) -> None:  # noqa: F811
    config, gateway = setup(**PLAN)
    out = tmp_path / "out"
    with traffic(gateway.url):
        started = time.monotonic()
        result = run_in_pipe(config, out, redis_url)
        elapsed = time.monotonic() - started
    assert "ramp decision" not in result.stderr, result.stderr
    assert "\x1b" not in result.stdout
    lines = result.stdout.splitlines()
    progress = [line for line in lines if line.startswith("[demo] step ")]
    # A line that repeats the step and action of the one before is a heartbeat:
    # at most one per HEARTBEAT_S of the run, not one per check.
    said = [(line.split(" | ")[0], line.rsplit(" | ", 1)[-1].split(":")[0]) for line in progress]
    repeats = sum(before == after for before, after in pairwise(said))
    assert repeats <= elapsed / HEARTBEAT_S + 1, result.stdout
    records = decisions(out)
    check_ended(result.returncode, records, result.stdout + result.stderr)
    changes = runs(records)
    seconds = _epoch(records[-1]["ts"]) - _epoch(records[0]["ts"])
    # A line for each change, and at most one heartbeat per HEARTBEAT_S in between.
    assert len(changes) <= len(progress) <= len(changes) + seconds / HEARTBEAT_S + 1
    assert len(progress) < len(records), result.stdout  # not a line per check
    last = records[-1]
    assert progress[-1].endswith(f"| {last['action']} ({last['rule']}): {last['reason']}")
    assert lines[0].startswith("ramping canary of demo")
    assert lines[1] == f"[demo] decision log: {out / 'ramp-demo.log'}"
    ending = lines.index(progress[-1]) + 2
    assert lines[ending].startswith(ENDINGS) and lines[ending + 1].startswith("  report (")


def test_verbose_logs_every_decision_to_stderr_as_in_the_file(setup, redis_url, tmp_path) -> None:  # noqa: F811
    config, gateway = setup(**PLAN)
    out = tmp_path / "out"
    with traffic(gateway.url):
        result = run_in_pipe(config, out, redis_url, "-v")
    logged = [line for line in result.stderr.splitlines() if "abgate.ramp: ramp decision" in line]
    assert logged, result.stderr
    records = decisions(out)
    check_ended(result.returncode, records, result.stdout + result.stderr)
    assert len(logged) == len(records) >= 4
    for line, record in zip(logged, records, strict=True):
        assert f"action={record['action']} " in line and f"step={record['step']} " in line


def test_the_decision_log_file_holds_every_decision(setup, redis_url, tmp_path) -> None:  # noqa: F811
    config, gateway = setup(**PLAN)
    out = tmp_path / "out"
    with traffic(gateway.url):
        result = run_in_pipe(config, out, redis_url)
    records = decisions(out)
    check_ended(result.returncode, records, result.stdout + result.stderr)
    assert all(r["msg"] == "ramp decision" and r["experiment"] == "demo" for r in records)
    assert all(r["evidence"] is not None and r["reason"] for r in records)
    # Every step change and every hold the audit log has, in order, was a logged decision.
    audited = [
        (e["action"].removeprefix("ramp_"), e["reason"])
        for e in Store(redis_url).audit("demo", count=1000)
        if e["actor"] == "ramp-controller" and e["action"] in ("ramp_advance", "ramp_hold")
    ]
    logged = [(r["action"], r["reason"]) for r in records if r["action"] in ("advance", "hold")]
    assert logged == audited
    steps = [r["step"] for r in records]
    assert steps == sorted(steps) and steps[0] == 1
    assert records[-1]["level"] == ("info" if records[-1]["action"] == "promote" else "warning")
    # A wait repeats once per check: the file has them all, not just the changes.
    assert len(records) > len(runs(records))


def _epoch(ts: str) -> float:
    return time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) + float(ts[19:-1] or 0)
