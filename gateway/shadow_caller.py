"""The shadow caller: a gateway process's child that makes its shadow calls.

    python -m gateway.shadow_caller FD

``FD`` is its end of a Unix socket from the serving process
(``gateway.shadow_calls.ShadowProcess``, which starts it). Each call read from
it is made on this process's own keep-alive pools (``EndpointPool``, with its
deadline and retry of a stale connection) and answered on the same socket.
The process exits when the socket closes: its parent stopped or died.

While calls are in flight its event loop turns once every ``PACE_S``, handling
whatever came meanwhile, instead of waking at each answer (see ``_paced``).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import time
from collections.abc import Sequence

from gateway.shadow_calls import CALL, ERROR_KINDS, METHODS, Frames, encode_answer
from gateway.upstream import EndpointPool, UpstreamError

__all__ = ["main"]

log = logging.getLogger("abgate.shadows")

# Answers go back together, at most this long after the first one: the serving process
# then wakes for a batch of them instead of once per shadow answer (a shadow's answer
# is compared and counted, never awaited by anyone, so 10 ms changes nothing).
ANSWER_BATCH_S = 0.01

# While calls are in flight the loop turns once every PACE_S, not at each answer: a
# shadow answering 700 calls a second otherwise wakes this process 700 times a second,
# each wake-up taking a core from the live requests. Measured with
# ``python -m bench.shadow_mirroring`` (2 cores, one connection, 1 ms pace): this
# process's wake-ups fell from ~640 to ~105 a second and its CPU by 30 %, and the live
# p99 over no mirroring from x1.55 to x1.16-1.20 (docs/performance.md). The price: a
# shadow call's deadline and answer are seen up to PACE_S late, and its slot is held
# that much longer.
PACE_S = 0.01


class _Calls(asyncio.Protocol):
    """Reads calls, makes each as a task, writes each answer when it comes."""

    def __init__(self, done: asyncio.Future[None]) -> None:
        self.done = done
        self.frames = Frames()
        self.pools: dict[bytes, EndpointPool] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.transport: asyncio.Transport | None = None
        self.outbox: list[bytes] = []
        self.busy = asyncio.Event()  # set when calls come, and when the socket closes

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        for frame in self.frames.feed(data):
            task = loop.create_task(self._call(frame))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        self.busy.set()

    async def _call(self, frame: bytes) -> None:
        call_id, timeout_s, method, url_n, path_n, type_n, headers_n = CALL.unpack_from(frame)
        at = CALL.size
        url = frame[at : at + url_n]
        at += url_n
        path = frame[at : at + path_n]
        at += path_n
        content_type = frame[at : at + type_n]
        at += type_n
        headers = frame[at : at + headers_n]
        body = frame[at + headers_n :]
        pool = self.pools.get(url)
        if pool is None:
            pool = self.pools[url] = EndpointPool(url.decode())
        try:
            response = await pool.request(
                path, body, headers, timeout_s, METHODS[method], content_type
            )
            answer = encode_answer(call_id, response.status, response.body)
        except UpstreamError as exc:
            answer = encode_answer(call_id, -1 - ERROR_KINDS.index(exc.kind), str(exc).encode())
        except Exception as exc:  # never lose the answer: the call fails, it is not left open
            log.exception("shadow call to %s failed", url.decode(errors="replace"))
            answer = encode_answer(call_id, -1, f"shadow caller: {exc}".encode())
        self.outbox.append(answer)
        if len(self.outbox) == 1:
            asyncio.get_running_loop().call_later(ANSWER_BATCH_S, self._flush)

    def _flush(self) -> None:
        answers, self.outbox = self.outbox, []
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(b"".join(answers))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)
        self.busy.set()


async def _paced(calls: _Calls, done: asyncio.Future[None]) -> None:
    """Until ``done``: while calls are in flight (or answers wait to go back), one turn of
    the loop every ``PACE_S``; otherwise wait for calls, waking only when they come."""
    while not done.done():
        if not calls.tasks and not calls.outbox:
            calls.busy.clear()
            await calls.busy.wait()  # calls came, or the socket closed
            continue
        await asyncio.sleep(0)  # one turn of the loop: what came meanwhile is handled
        time.sleep(PACE_S)  # blocking on purpose: this process has nothing else to do


async def _serve(fd: int) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, fileno=fd)
    sock.setblocking(False)
    transport, calls = await loop.create_unix_connection(lambda: _Calls(done), sock=sock)
    await _paced(calls, done)
    for task in calls.tasks:
        task.cancel()
    for pool in calls.pools.values():
        pool.close()
    transport.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the calls of the socket at file descriptor ``argv[0]`` until it closes."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or not args[0].isdigit():
        print("usage: python -m gateway.shadow_caller FD", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    # The serving process handles Ctrl-C and SIGTERM; this one ends when it closes the socket.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - depends on the platform
        asyncio.run(_serve(int(args[0])))
    else:
        uvloop.run(_serve(int(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
