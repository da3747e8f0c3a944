"""A TCP proxy on 127.0.0.1 that delays every byte by a fixed one-way delay, both ways.

``python -m bench.delay_proxy --target HOST:PORT --rtt-ms 40`` prints
``listening on 127.0.0.1:PORT`` and forwards each connection to the target, holding
every chunk it reads back for ``rtt / 2`` before writing it on, in each direction.
The kernel's netem is not available everywhere (containers), and a proxy needs no
privileges. Chunks keep their order; a chunk read while earlier ones wait is
delayed from when it was read, so the delay is added once, not queued behind
others. Bytes pass through untouched (TLS goes end to end through it). When one
side closes, the other is closed after the delayed bytes have gone.

Connecting to the proxy is instant, where over a network TCP's handshake takes a
round trip before the client can send. So the client's first bytes are held as if
sent one RTT after it connected: a new connection pays for its handshake, as the
connection-per-event pattern does on a real network.

Run it in its own process: in the process being measured, its timers would share
that process's event loop and its stalls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Sequence

DEFAULT_RTT_MS = 40.0
LISTENING_PREFIX = "listening on "
_CHUNK = 64 * 1024


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    delay: float,
    not_before: float = 0.0,
) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``delay`` seconds after it was read
    (or after ``not_before``, a monotonic time, if it was read earlier)."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    def due() -> float:
        return max(time.monotonic(), not_before) + delay

    async def read() -> None:
        try:
            while chunk := await reader.read(_CHUNK):
                queue.put_nowait((due(), chunk))
        except (ConnectionError, OSError):
            pass
        finally:
            queue.put_nowait((due(), b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            at, chunk = await queue.get()
            wait = at - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        pass
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reading


class DelayProxy:
    """``async with DelayProxy(target_host, target_port, rtt_ms=40) as proxy``."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        rtt_ms: float = DEFAULT_RTT_MS,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        if rtt_ms < 0:
            raise ValueError("the round-trip time cannot be negative")
        self.target = (target_host, target_port)
        self.one_way = rtt_ms / 2000
        self.host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the proxy is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> DelayProxy:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        # The client could send once TCP's SYN and SYN-ACK had crossed: one RTT.
        handshake_done = time.monotonic() + 2 * self.one_way
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
            await asyncio.gather(
                _pump(reader, upstream_writer, self.one_way, handshake_done),
                _pump(upstream_reader, writer, self.one_way),
            )
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(task)
            for side in (writer, upstream_writer):
                if side is not None:
                    side.close()
                    with contextlib.suppress(ConnectionError, OSError):
                        await side.wait_closed()


async def _serve(target: str, rtt_ms: float, port: int) -> None:
    host, _, target_port = target.rpartition(":")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with DelayProxy(host.strip("[]"), int(target_port), rtt_ms=rtt_ms, port=port) as proxy:
        print(f"{LISTENING_PREFIX}{proxy.host}:{proxy.port}", flush=True)
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.delay_proxy", description=__doc__)
    parser.add_argument("--target", required=True, metavar="HOST:PORT")
    parser.add_argument("--rtt-ms", type=float, default=DEFAULT_RTT_MS)
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.target, args.rtt_ms, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
