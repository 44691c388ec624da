"""Child processes: their output is shown line by line, prefixed with their name."""

from __future__ import annotations

import io
import sys

from abgate.processes import start_child


def test_child_output_is_prefixed_with_its_name() -> None:
    script = "import sys; print('to stdout', flush=True); print('to stderr', file=sys.stderr)"
    sink = io.StringIO()
    child = start_child("worker-v1", [sys.executable, "-c", script], log=sink)
    assert child.process.wait(timeout=30) == 0
    child.stop()  # joins the thread that copies the output
    lines = sorted(sink.getvalue().splitlines())
    assert lines == ["   worker-v1 | to stderr", "   worker-v1 | to stdout"]
