"""The delay proxy: the one-way delay each direction, bytes intact, a clean close.

A real TCP echo server stands behind a real proxy. Lower bounds only are asserted
(a loaded machine adds time, never removes it), and the proxy's own added time is
compared with the same exchange made directly.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator

import pytest

from bench.delay_proxy import LISTENING_PREFIX, DelayProxy

RTT_MS = 60.0


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes
) -> tuple[float, bytes]:
    began = time.perf_counter()
    writer.write(payload)
    await writer.drain()
    received = await reader.readexactly(len(payload))
    return (time.perf_counter() - began) * 1000, received


async def test_a_round_trip_through_the_proxy_takes_the_rtt_and_keeps_every_byte(
    echo_port: int,
) -> None:
    payload = os.urandom(300_000)  # several chunks, each delayed once
    async with DelayProxy("127.0.0.1", echo_port, rtt_ms=RTT_MS) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        # A new connection: TCP's handshake round trip, then the exchange's own.
        first_ms, first = await _exchange(reader, writer, payload)
        again_ms, again = await _exchange(reader, writer, payload[::-1])
        writer.close()
        await writer.wait_closed()
    assert first == payload and again == payload[::-1]
    assert first_ms >= 2 * RTT_MS * 0.95
    assert again_ms >= RTT_MS * 0.95
    # Not queued behind the handshake: the second exchange pays one RTT, not two (a
    # loaded machine adds to both; the ratio still tells one RTT from two).
    assert again_ms < first_ms


async def test_each_direction_gets_half_of_the_rtt() -> None:
    """The server's first bytes (no request) reach the client one way later."""
    greeted = asyncio.Event()
    sent_at: list[float] = []

    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sent_at.append(time.perf_counter())
        writer.write(b"hello")
        await writer.drain()
        await reader.read()  # until the client half-closes
        greeted.set()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    async with server, DelayProxy(*server.sockets[0].getsockname()[:2], rtt_ms=RTT_MS) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await reader.readexactly(5) == b"hello"
        arrived = time.perf_counter()
        writer.write_eof()
        began_close = time.perf_counter()
        await asyncio.wait_for(greeted.wait(), 10)
        # The EOF also travels one way: the server sees it half an RTT later.
        close_ms = (time.perf_counter() - began_close) * 1000
        # The proxy closes the client's side after the server closed its own.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await writer.wait_closed()
    assert (arrived - sent_at[0]) * 1000 >= RTT_MS / 2 * 0.95
    assert close_ms >= RTT_MS / 2 * 0.95


async def test_bytes_pass_unchanged_in_order_both_ways_over_many_writes(echo_port: int) -> None:
    async with DelayProxy("127.0.0.1", echo_port, rtt_ms=10) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        pieces = [bytes([n % 256]) * (n + 1) for n in range(200)]
        for piece in pieces:
            writer.write(piece)
        await writer.drain()
        expected = b"".join(pieces)
        assert await asyncio.wait_for(reader.readexactly(len(expected)), 10) == expected
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await writer.wait_closed()


async def test_an_unreachable_target_closes_the_client_connection() -> None:
    closed = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = int(closed.sockets[0].getsockname()[1])
    closed.close()
    await closed.wait_closed()
    async with DelayProxy("127.0.0.1", port, rtt_ms=10) as proxy:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()


async def test_stopping_the_proxy_closes_open_connections(echo_port: int) -> None:
    proxy = DelayProxy("127.0.0.1", echo_port, rtt_ms=10)
    await proxy.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"x")
    assert await asyncio.wait_for(reader.readexactly(1), 10) == b"x"
    await asyncio.wait_for(proxy.stop(), 10)
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()


def test_the_proxy_runs_as_its_own_process_and_stops_on_sigterm() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.delay_proxy", "--target", "127.0.0.1:9", "--rtt-ms", "5"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith(f"{LISTENING_PREFIX}127.0.0.1:")
        assert int(first.rsplit(":", 1)[1]) > 0
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        if proc.stdout is not None:
            proc.stdout.close()


def test_a_negative_rtt_is_refused() -> None:
    with pytest.raises(ValueError):
        DelayProxy("127.0.0.1", 1, rtt_ms=-1)
