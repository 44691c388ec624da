"""``--workers N``: a supervisor that forks N server processes sharing one port.

Each process has its own listening socket on the port (``SO_REUSEPORT``: the
kernel spreads the connections) and its own gateway, built from the ``Settings``
the supervisor hands it (a forked process shares the parent's objects: no
settings travel through the environment). The processes publish their figures
in one metrics directory (``gateway/metrics_dir.py``), named in those settings,
so every ``/metrics`` scrape shows the whole gateway.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable

from core.settings import Settings
from gateway import metrics_dir

__all__ = ["STARTUP_FAILURE", "Supervisor", "check_port_free", "serve_forked"]

log = logging.getLogger("abgate.server")

STARTUP_FAILURE = 3  # exit code of a server process whose gateway cannot start (as uvicorn)


class Supervisor:
    """Forks the server processes, forwards SIGTERM/SIGINT, restarts one that dies.

    A process that fails within ``MIN_UPTIME_S`` of its start (or fails to start)
    is not restarted: the others are stopped and the supervisor exits 1. One
    that exits cleanly (it was told to stop) is replaced whenever it ends. Once
    stopping, a process still alive ``kill_after`` seconds later is killed
    (SIGKILL) and the supervisor exits 1: a stop always ends.
    """

    MIN_UPTIME_S = 2.0
    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(
        self,
        target: Callable[[], int],
        count: int,
        kill_after: float,
        on_exit: Callable[[int], None] | None = None,
    ) -> None:
        self.target = target
        self.on_exit = on_exit  # called with the pid of each process reaped
        self.count = count
        self.kill_after = kill_after
        self.children: dict[int, float] = {}  # pid -> start (monotonic)
        self.stopping = False
        self.failed = False

    def run(self) -> int:
        """Start the processes and wait for them all to end; the exit code."""
        previous = {signum: signal.signal(signum, self._on_signal) for signum in self.SIGNALS}
        previous[signal.SIGALRM] = signal.signal(signal.SIGALRM, self._on_overdue)
        try:
            for _ in range(self.count):
                self._spawn()
            while self.children:
                pid, status = os.wait()
                started = self.children.pop(pid, None)
                if started is not None:
                    if self.on_exit is not None:
                        self.on_exit(pid)
                    self._reap(pid, os.waitstatus_to_exitcode(status), started)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        return 1 if self.failed else 0

    def _reap(self, pid: int, code: int, started: float) -> None:
        if self.stopping:
            self.failed = self.failed or code != 0
        elif code == STARTUP_FAILURE or (
            # A crash right after starting would crash again: stop instead of looping. A
            # clean exit (0) is a process told to stop (a SIGTERM to it alone): replace it.
            code != 0 and time.monotonic() - started < self.MIN_UPTIME_S
        ):
            log.error("server process %d exited with %d right after starting: stopping", pid, code)
            self.failed = True
            self._stop_all()
        else:
            log.warning("server process %d exited with %d: starting another", pid, code)
            self._spawn()

    def _spawn(self) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, self.SIGNALS)  # no handler runs mid-fork
        try:
            pid = os.fork()
            if pid == 0:
                self._child()
            self.children[pid] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.SIGNALS)

    def _child(self) -> None:
        """In a forked process: run the server, then exit (never back into the parent's code)."""
        code = 1
        try:
            for signum in self.SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGALRM, signal.SIG_DFL)
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, self.SIGNALS)
            code = self.target()
        except BaseException:
            log.exception("server process %d failed", os.getpid())
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.stopping = True
        self._stop_all()

    def _stop_all(self) -> None:
        if not self.stopping or signal.getitimer(signal.ITIMER_REAL)[0] == 0:
            signal.setitimer(signal.ITIMER_REAL, self.kill_after)
        self.stopping = True
        self._signal_all(signal.SIGTERM)

    def _on_overdue(self, signum: int, frame: object) -> None:
        if self.children:
            pids = ", ".join(str(pid) for pid in sorted(self.children))
            log.error("server process(es) %s still running %gs after SIGTERM: killing", pids,
                      self.kill_after)  # fmt: skip
            self.failed = True
            self._signal_all(signal.SIGKILL)

    def _signal_all(self, signum: int) -> None:
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)


def check_port_free(host: str, port: int) -> None:
    """Raise OSError when something listens on ``host:port`` (SO_REUSEPORT would share it)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(address)


def serve_forked(
    run: Callable[[Settings], int],
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    kill_after: float,
) -> int:
    """Fork ``workers`` processes that each return ``run(settings)``; the exit code.

    The settings each process gets name the run's metrics directory:
    ``settings.metrics_dir`` emptied, or when unset a temporary one, removed at
    the end. Returns 1 without forking when the port is taken or the platform
    lacks ``SO_REUSEPORT``.
    """
    if not hasattr(socket, "SO_REUSEPORT"):
        log.error("--workers needs SO_REUSEPORT, which this platform lacks")
        return 1
    try:
        check_port_free(host, port)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", host, port, exc)
        return 1
    log.info("starting %d server processes on http://%s:%d", workers, host, port)
    shared = metrics_dir.prepare(settings.metrics_dir)
    each = settings.model_copy(update={"metrics_dir": str(shared)})
    supervisor = Supervisor(
        lambda: run(each),
        workers,
        kill_after=kill_after,
        on_exit=lambda pid: metrics_dir.mark_process_dead(shared, pid),
    )
    try:
        return supervisor.run()
    finally:
        if not settings.metrics_dir:
            shutil.rmtree(shared, ignore_errors=True)
