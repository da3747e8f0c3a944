"""A client written only from Relay's documented examples, the naive way they are.

Nothing here comes from relaybridge: it connects with a Bearer header, sends
``discover``, reads "the next frame" as the answer, sends one event to Athena and
reads ``accepted``, tokens and the ``reply``. It must work against the emulator
unchanged apart from the URL and the token.
"""

from __future__ import annotations

import asyncio
import json

import websockets

from relaybridge.emulator import RelayEmulator
from relaybridge.testing import TEST_APP_TOKEN


async def documented_client(url: str, token: str) -> tuple[list[str], str, str]:
    async with websockets.connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        await ws.send(json.dumps({"type": "discover"}))
        agents = json.loads(await ws.recv())
        names = [agent["name"] for agent in agents["agents"]]

        await ws.send(
            json.dumps(
                {
                    "type": "event",
                    "agent_id": "athena",
                    "thread_id": "task-123",
                    "payload": {
                        "event": "comment.mention",
                        "message": "@athena summarize this task",
                        "task_id": "task-123",
                        "task_title": "Q2 Roadmap Review",
                    },
                }
            )
        )
        accepted = json.loads(await ws.recv())
        print(f"Event accepted: {accepted['event_id']}")

        streamed = ""
        async for message in ws:
            data = json.loads(message)
            if data["type"] == "token":
                streamed += data["token"]
            elif data["type"] == "reply":
                return names, streamed, data["reply"]
            elif data["type"] == "error":
                raise RuntimeError(data["error"])
    raise RuntimeError("connection closed before the reply")


async def test_documented_client_works_unchanged(relay: RelayEmulator) -> None:
    async with asyncio.timeout(5):
        names, streamed, reply = await documented_client(relay.url, TEST_APP_TOKEN)
    assert "Athena" in names
    assert reply == streamed
    assert "Q2 Roadmap Review" in reply
