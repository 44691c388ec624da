"""Child processes that ``abgate up``/``demo`` and the tests start and stop by pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = ["Child", "abgate_argv", "start_child", "wait_http_ok"]


@dataclass
class Child:
    """A started process, its name, and where it answers HTTP."""

    name: str
    process: subprocess.Popen[bytes]
    url: str | None = None
    _pump: threading.Thread | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        """Pid of the process."""
        return self.process.pid

    def alive(self) -> bool:
        """Whether it is still running."""
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
        """Signal it (SIGTERM by default), escalate to SIGKILL, return its exit code."""
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, sig)
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        if self._pump is not None:
            self._pump.join(timeout=2)
        return self.process.wait()


def _prefix_lines(name: str, stream: IO[bytes], sink: IO[str]) -> None:
    """Copy the child's output line by line, each prefixed by its name (``abgate up``)."""
    with stream:  # closed at the child's end of output, not left to the garbage collector
        for raw in iter(stream.readline, b""):
            sink.write(f"{name:>12} | {raw.decode(errors='replace').rstrip()}\n")
            sink.flush()


def start_child(
    name: str,
    argv: Sequence[str],
    *,
    url: str | None = None,
    env: dict[str, str] | None = None,
    log: IO[str] | None = None,
    output: Path | None = None,
) -> Child:
    """Start ``argv``; with ``log`` its output is copied there, each line prefixed by
    ``name``; with ``output`` it is appended to that file by the child itself."""
    sink: Any = subprocess.PIPE if log is not None else subprocess.DEVNULL
    with contextlib.ExitStack() as files:
        if output is not None and log is None:
            sink = files.enter_context(output.open("ab"))
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT if sink is not subprocess.DEVNULL else subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    pump = None
    if log is not None and process.stdout is not None:
        pump = threading.Thread(target=_prefix_lines, args=(name, process.stdout, log), daemon=True)
        pump.start()
    return Child(name, process, url, pump)


def abgate_argv(*args: str) -> list[str]:
    """Command line that runs this same abgate with ``args``."""
    return [sys.executable, "-m", "abgate", *args]


def wait_http_ok(url: str, *, timeout: float = 30.0, child: Child | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early when ``child`` dies."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if child is not None and not child.alive():
            raise RuntimeError(f"{child.name} exited with code {child.process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout:.0f}s: {last}")
