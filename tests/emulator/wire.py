"""Small test-side WebSocket peers for talking to the emulator.

Deliberately independent of relaybridge's own client code: plain ``websockets``
and ``json``, so the emulator is checked against the protocol, not against us.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

Frame = dict[str, Any]
TIMEOUT = 3.0
TERMINAL = {"reply", "error"}


class Peer:
    """One connection; ``recv`` returns decoded frames and never waits forever."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.stash: list[Frame] = []

    async def send(self, frame: Frame) -> None:
        await self.ws.send(json.dumps(frame))

    async def recv(self) -> Frame:
        """The next frame (stashed ones first); fails the test after ``TIMEOUT`` seconds."""
        if self.stash:
            return self.stash.pop(0)
        async with asyncio.timeout(TIMEOUT):
            frame: Frame = json.loads(await self.ws.recv())
        return frame

    async def recv_skipping_pings(self) -> Frame:
        while True:
            frame = await self.recv()
            if frame.get("type") != "ping":
                return frame

    async def submit(self, agent_id: str, thread_id: str, payload: Frame) -> Frame:
        """Send an event and return Relay's answer to it (accepted or null-event error)."""
        await self.send(
            {"type": "event", "agent_id": agent_id, "thread_id": thread_id, "payload": payload}
        )
        return await self.next_answer()

    async def next_answer(self) -> Frame:
        """The next ``accepted`` or null-event error; stream frames are kept for later."""
        skipped: list[Frame] = []
        while True:
            frame = await self.recv()
            if frame["type"] == "accepted" or (
                frame["type"] == "error" and frame.get("event_id") is None
            ):
                self.stash = skipped + self.stash
                return frame
            skipped.append(frame)

    async def until_terminal(self, event_id: str) -> list[Frame]:
        """Frames of ``event_id`` up to its terminal frame; other frames are kept for later."""
        mine: list[Frame] = []
        others: list[Frame] = []
        while True:
            frame = await self.recv()
            if frame.get("event_id") != event_id:
                others.append(frame)
                continue
            mine.append(frame)
            if frame["type"] in TERMINAL:
                self.stash = others + self.stash
                return mine


def app_message(text: str = "@athena summarize this task", **extra: Any) -> Frame:
    return {"event": "comment.mention", "message": text, **extra}


@asynccontextmanager
async def open_peer(
    url: str, token: str | None = None, *, query: str | None = None
) -> AsyncIterator[Peer]:
    """Connect with a Bearer header (``token``) and/or ``?token=`` (``query``)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else None
    target = f"{url}?token={query}" if query is not None else url
    async with connect(target, additional_headers=headers, open_timeout=TIMEOUT) as ws:
        yield Peer(ws)
