"""The emulator's raw mode, seen from a plain WebSocket client: exactly the bytes asked for."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError

from relaybridge.testing import TEST_APP_ID, running_emulator


async def _app_client(relay: Any, nth: int = 1) -> Any:
    """The ``nth`` app connection, once the emulator has registered it."""
    client = await connect(
        relay.url,
        additional_headers={"Authorization": f"Bearer {relay.app_token}"},
        max_size=None,
    )
    await asyncio.wait_for(relay.wait_for_app(TEST_APP_ID, nth), 5)
    return client


async def test_text_and_binary_arrive_unchanged_on_every_app_connection() -> None:
    async with running_emulator() as relay:
        first, second = await _app_client(relay), await _app_client(relay, 2)
        assert await relay.raw.send('{"type": "token", "token": 7') == 2
        assert await relay.raw.send(b"\x00\xff binary") == 2
        for client in (first, second):
            assert await client.recv() == '{"type": "token", "token": 7'
            assert await client.recv() == b"\x00\xff binary"
        assert relay.raw.messages_sent == 4
        assert await relay.raw.send("x", app_id="someone-else") == 0
        for client in (first, second):
            await client.close()


async def test_invalid_utf8_as_text_makes_the_client_close_1007() -> None:
    async with running_emulator() as relay:
        client = await _app_client(relay)
        assert await relay.raw.send(b'{"type":"\xff"}', text=True) == 1
        with pytest.raises(ConnectionClosedError) as closed:
            await client.recv()
        assert closed.value.sent is not None and closed.value.sent.code == 1007


async def test_a_truncated_frame_leaves_the_client_waiting_then_cut_off() -> None:
    async with running_emulator() as relay:
        client = await _app_client(relay)
        assert (
            relay.raw.send_truncated(b'{"type": "token", "token": "' + b"a" * 70_000 + b'"}') == 1
        )
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(client.recv(), 5)
        # No close frame ever came: the connection was dropped mid-frame.
        assert closed.value.rcvd is None
        assert relay.raw.send_truncated(b"{}") == 0  # nothing left to cut
