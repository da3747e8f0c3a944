"""An external agent that loses its connection to Relay in the middle of its answers.

``python -m tests.reliability.agent --url WS_URL --token rla_… [--drop-every-s S]``
connects to Relay's agent endpoint (protocol §8), answers every event by streaming
the words of a fixed sentence and then replying with the whole of it. Every ``S``
seconds, while it is answering, it drops the TCP connection without a close frame,
as a flaky network would, reconnects and carries on where each answer was: Relay
accepts an agent's frames for an open event on any of its connections.

It prints one line per connection (``agent connected``), per event it receives
(``agent got evt_…``) and per drop, so a test can wait for it and check what it
did. Killed with SIGKILL, it never comes back: the "agent gone for good" half.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

ANSWER = "I read the task and here is what I think about it, word by word, across reconnects."


def answer_words() -> list[str]:
    words = ANSWER.split(" ")
    return [words[0], *(" " + word for word in words[1:])]


class FlakyAgent:
    def __init__(self, url: str, token: str, drop_every: float, token_delay: float) -> None:
        self.url = url
        self.token = token
        self.drop_every = drop_every
        self.token_delay = token_delay
        self.connection: ClientConnection | None = None
        self.connected = asyncio.Event()
        self.answers: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        if self.drop_every:
            dropper = asyncio.create_task(self.drop_now_and_then())
            self.answers.add(dropper)  # keeps a reference
        while True:
            try:
                async with connect(
                    self.url, additional_headers={"Authorization": f"Bearer {self.token}"}
                ) as ws:
                    self.connection = ws
                    self.connected.set()
                    print("agent connected", flush=True)
                    await self.read(ws)
            except (OSError, ConnectionClosed, InvalidHandshake):
                pass
            self.connected.clear()
            self.connection = None
            await asyncio.sleep(0.2)

    async def read(self, ws: ClientConnection) -> None:
        async for message in ws:
            frame: Any = json.loads(message)
            if frame.get("type") == "ping":
                await ws.send(json.dumps({"type": "pong"}))
            elif frame.get("type") == "event":
                print(f"agent got {frame['event_id']}", flush=True)
                task = asyncio.create_task(self.answer(frame["event_id"]))
                self.answers.add(task)
                task.add_done_callback(self.answers.discard)

    async def send(self, frame: dict[str, Any]) -> None:
        """Send on whichever connection is open now, waiting out a reconnect."""
        while True:
            await self.connected.wait()
            ws = self.connection
            if ws is None:
                continue
            try:
                await ws.send(json.dumps(frame))
                return
            except ConnectionClosed:
                self.connected.clear()
                await asyncio.sleep(0.05)

    async def answer(self, event_id: str) -> None:
        for word in answer_words():
            await asyncio.sleep(self.token_delay)
            await self.send({"type": "token", "event_id": event_id, "token": word})
        metadata = {"tokens_used": len(answer_words()), "model": "flaky-agent"}
        await self.send(
            {"type": "reply", "event_id": event_id, "content": ANSWER, "metadata": metadata}
        )

    async def drop_now_and_then(self) -> None:
        while True:
            await asyncio.sleep(self.drop_every)
            if len(self.answers) > 1:  # only mid-answer (the dropper itself is one)
                self.drop()

    def drop(self) -> None:
        ws = self.connection
        if ws is not None and self.connected.is_set():
            print("agent dropped its connection", flush=True)
            self.connected.clear()
            ws.transport.abort()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.reliability.agent")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--drop-every-s", type=float, default=0.0, metavar="SECONDS")
    parser.add_argument("--token-delay-ms", type=float, default=40.0)
    args = parser.parse_args(argv)
    agent = FlakyAgent(args.url, args.token, args.drop_every_s, args.token_delay_ms / 1000)
    asyncio.run(agent.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
