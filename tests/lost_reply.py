"""A TCP proxy in front of a real Redis that loses replies on purpose.

It forwards every command, and when a command carries a chosen byte pattern
(say a feedback's claim key) while it is armed, it waits for Redis's reply to
that command, throws the reply away and closes the client's connection: the
command ran in Redis, its caller never learns so. That is the failure a retry
must survive without counting twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

from abgate.redis_server import free_port


@dataclass
class ReplyDroppingProxy:
    """Forwards 127.0.0.1:``port`` to ``upstream`` (host, port) in its own thread."""

    upstream: tuple[str, int]
    port: int = field(default_factory=free_port)
    # Replies still to drop for commands carrying ``pattern`` (-1: every one).
    drops_left: int = 0
    pattern: bytes = b""
    dropped: int = 0  # replies lost so far
    forwarded: int = 0  # commands carrying the pattern that got their reply
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        """A Redis URL that goes through the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def arm(self, pattern: bytes, drops: int = 1) -> None:
        """Lose the replies of the next ``drops`` commands carrying ``pattern`` (-1: all)."""
        with self._lock:
            self.pattern, self.drops_left = pattern, drops

    def disarm(self) -> None:
        """Forward every reply from now on (commands with the pattern are still counted)."""
        with self._lock:
            self.drops_left = 0

    def _take_drop(self, seen: bytes) -> bool:
        with self._lock:
            if not self.pattern or self.pattern not in seen:
                return False
            if self.drops_left == 0:
                self.forwarded += 1
                return False
            if self.drops_left > 0:
                self.drops_left -= 1
            return True

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        drop = asyncio.Event()  # set: the reply now coming from Redis is to be lost

        async def to_redis() -> None:
            tail = b""
            while chunk := await reader.read(65536):
                seen, tail = tail + chunk, (tail + chunk)[-256:]
                if not drop.is_set() and self._take_drop(seen):
                    drop.set()
                up_writer.write(chunk)
                await up_writer.drain()

        async def to_client() -> None:
            while chunk := await up_reader.read(65536):
                if drop.is_set():
                    # Redis has run the command and answered; the caller never hears.
                    with self._lock:
                        self.dropped += 1
                    return
                writer.write(chunk)
                await writer.drain()

        tasks = [asyncio.ensure_future(to_redis()), asyncio.ensure_future(to_client())]
        try:
            with contextlib.suppress(Exception):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for w in (writer, up_writer):
                w.transport.abort()

    def start(self) -> ReplyDroppingProxy:
        """Listen; returns once connections are accepted."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            server = loop.run_until_complete(
                asyncio.start_server(self._serve, "127.0.0.1", self.port)
            )
            ready.set()
            try:
                loop.run_forever()
            finally:
                server.close()
                # End every connection's pumps, so none is left pending at exit.
                loop.run_until_complete(_cancel_all(loop))
                loop.close()

        self._thread = threading.Thread(target=run, name="reply-dropping-proxy", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the proxy did not start"
        return self

    def stop(self) -> None:
        """Stop listening and end the thread."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


async def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    tasks = asyncio.all_tasks(loop) - {asyncio.current_task()}
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.contextmanager
def reply_dropping_proxy(redis_url: str) -> Iterator[ReplyDroppingProxy]:
    """A started proxy in front of the Redis at ``redis_url`` (redis://host:port/...)."""
    host_port = redis_url.split("://", 1)[1].split("/", 1)[0]
    host, port = host_port.rsplit(":", 1)
    proxy = ReplyDroppingProxy((host, int(port))).start()
    try:
        yield proxy
    finally:
        proxy.stop()
