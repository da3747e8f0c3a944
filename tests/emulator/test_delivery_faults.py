"""Delivery faults: duplicated, delayed (so reordered across events) frames, second replies."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import pytest

from relaybridge.emulator.agents import summarize
from relaybridge.emulator.cli import add_arguments, config_from_args
from relaybridge.emulator.faults import DeliveryFaults
from relaybridge.emulator.router import SECOND_REPLY_TEXT
from relaybridge.testing import TEST_APP_TOKEN

from .conftest import MakeRelay
from .wire import Peer, app_message, open_peer

Frames = list[dict[str, Any]]


async def read_until(peer: Peer, done: Callable[[Frames], bool], frames: Frames) -> Frames:
    """Frames from ``peer`` appended to ``frames`` until ``done(frames)``; 15 s at most.

    Each test stops at the frame that ends its scenario (the last reply), never at a
    quiet spell: a frame held up longer than the spell would escape the assertions.
    """
    async with asyncio.timeout(15):
        while not done(frames):
            frames.append(json.loads(await peer.ws.recv()))
    return frames


def replies_to(frames: Frames, event_id: str) -> int:
    return sum(1 for f in frames if f["type"] == "reply" and f["event_id"] == event_id)


async def test_every_frame_twice_and_a_second_reply(make_relay: MakeRelay) -> None:
    faults = DeliveryFaults(duplicate_rate=1.0, second_reply_rate=1.0, seed=1)
    async with (
        make_relay(delivery_faults=faults) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as app,
    ):
        payload = app_message(task_title="Doubles")
        await app.send(
            {"type": "event", "agent_id": "athena", "thread_id": "t-1", "payload": payload}
        )
        # Tokens come before an event's reply, and the injected second reply is the
        # last frame of all: once it is in, every frame of the event is.
        frames = await read_until(app, lambda got: sum(f["type"] == "reply" for f in got) == 3, [])
    kinds = [f["type"] for f in frames]
    assert kinds[:2] == ["accepted", "accepted"]
    replies = [f for f in frames if f["type"] == "reply"]
    # The reply twice, then a second, different reply for the finished event.
    assert [r["reply"] for r in replies] == [summarize(payload)] * 2 + [SECOND_REPLY_TEXT]
    assert len({f["event_id"] for f in frames}) == 1
    tokens = [f["token"] for f in frames if f["type"] == "token"]
    assert "".join(tokens) == summarize(payload)  # tokens are never doubled
    assert relay.delivery_counts.second_replies == 1


async def test_delays_reorder_across_events_never_within_one(make_relay: MakeRelay) -> None:
    faults = DeliveryFaults(max_delay_ms=40, seed=3)
    async with (
        make_relay(delivery_faults=faults) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as app,
    ):
        sent = []
        for n in range(4):
            payload = app_message(task_title=f"Task {n}")
            accepted = await app.submit("athena", f"t-{n}", payload)
            sent.append((accepted["event_id"], payload))
        frames = await read_until(
            app, lambda got: all(replies_to(got, event_id) for event_id, _ in sent), app.stash
        )
    by_event: dict[str, list[dict[str, Any]]] = {}
    for frame in frames:
        by_event.setdefault(frame["event_id"], []).append(frame)
    for event_id, payload in sent:
        mine = by_event[event_id]
        assert [f["type"] for f in mine][-1] == "reply"
        assert "".join(f["token"] for f in mine if f["type"] == "token") == summarize(payload)
    # The events' frames interleave, while each event kept its own order (above).
    order = [f["event_id"] for f in frames]
    assert any(order[i] != order[i + 1] for i in range(len(order) - 1))
    assert relay.delivery_counts.delayed > 0


def test_the_command_line_switches_them_on() -> None:
    import argparse

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--duplicate-frames",
            "0.25",
            "--delay-frames-ms",
            "80",
            "--second-reply",
            "1",
            "--fault-seed",
            "9",
        ]
    )
    config = config_from_args(args, {})
    assert config.delivery_faults == DeliveryFaults(0.25, 80.0, 1.0, 9)
    with pytest.raises(ValueError):
        DeliveryFaults(duplicate_rate=1.5)
