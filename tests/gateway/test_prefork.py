"""``--workers N`` (``gateway/prefork.py``): the forked processes are handed ``Settings``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from abgate.redis_server import free_port

# Each forked process writes down the settings it was handed and what the environment
# says, waits until both have, then exits as a process that cannot start: the supervisor
# stops and exits 1 (a clean exit would be replaced, for ever).
_FORKED = """
import os, sys, time
from pathlib import Path
from core.settings import Settings
from gateway.prefork import STARTUP_FAILURE, serve_forked

seen = Path(sys.argv[1])

def run(settings):
    env = os.environ.get("ABGATE_METRICS_DIR", "unset")
    (seen / str(os.getpid())).write_text(f"{settings.metrics_dir} {settings.host} {env}")
    deadline = time.monotonic() + 60
    while len(list(seen.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    return STARTUP_FAILURE

settings = Settings(metrics_dir=sys.argv[2], host="127.0.0.2")
sys.exit(serve_forked(run, settings, host="127.0.0.1", port=int(sys.argv[3]), workers=2,
                      kill_after=30.0))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_processes_are_handed_the_settings_not_the_environment(tmp_path: Path) -> None:
    seen, shared = tmp_path / "seen", tmp_path / "metrics"
    seen.mkdir()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("ABGATE_")}
    supervisor = subprocess.run(
        [sys.executable, "-c", _FORKED, str(seen), str(shared), str(free_port())],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert supervisor.returncode == 1, supervisor.stderr  # stopped: "exited right after starting"
    reports = sorted(path.read_text() for path in seen.iterdir())
    # Both processes: the run's metrics directory and the host, from the object handed
    # down; nothing set in the environment for them to rebuild settings from.
    assert reports == [f"{shared} 127.0.0.2 unset"] * 2, supervisor.stderr
    assert shared.is_dir()  # given: emptied and kept, not a temporary one
