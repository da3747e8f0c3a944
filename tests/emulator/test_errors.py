"""Every error code the emulator produces, and the order of the checks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relaybridge.emulator import RelayEmulator
from relaybridge.protocol.payload import MAX_PAYLOAD_BYTES, payload_size
from relaybridge.testing import TEST_APP_TOKEN

from .conftest import MakeRelay
from .wire import Frame, Peer, app_message, open_peer

HUGE = {"message": "x" * (MAX_PAYLOAD_BYTES + 1)}


def event(**fields: Any) -> Frame:
    return {"type": "event", "agent_id": "athena", "thread_id": "t", "payload": {}, **fields}


def without(frame: Frame, key: str) -> Frame:
    return {k: v for k, v in frame.items() if k != key}


async def refused(peer: Peer, message: str | bytes | Frame) -> Frame:
    """Send a raw message and return the null-event error it gets."""
    if isinstance(message, dict):
        message = json.dumps(message)
    await peer.ws.send(message)
    frame = await peer.recv()
    assert frame["type"] == "error", frame
    assert frame["event_id"] is None
    assert isinstance(frame["error"], str) and frame["error"]
    return frame


INVALID_MESSAGES: list[str | bytes | Frame] = [
    "not json",
    "[1, 2]",
    '"event"',
    {"agent_id": "athena"},
    {"type": 5},
    {"type": ""},
    {"type": "bogus"},
    without(event(), "agent_id"),
    event(agent_id=""),
    event(agent_id=5),
    without(event(), "thread_id"),
    event(thread_id=""),
    event(thread_id=["t"]),
    without(event(), "payload"),
    event(payload="text"),
    event(payload=[1]),
    event(payload=None),
    b'{"type": "ping"}',
    # Validation precedes the size check: a broken frame with a huge payload is INVALID.
    without(event(payload=HUGE), "thread_id"),
]


@pytest.mark.parametrize("message", INVALID_MESSAGES)
async def test_invalid_message(relay: RelayEmulator, message: str | bytes | Frame) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        frame = await refused(peer, message)
        assert frame["code"] == "INVALID_MESSAGE"
        # The connection stays usable after a refusal.
        await peer.send({"type": "ping"})
        assert await peer.recv() == {"type": "pong"}


async def test_invalid_event_names_the_agent_when_it_can(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        assert (await refused(peer, event(thread_id="")))["agent_id"] == "athena"
        assert (await refused(peer, event(agent_id="")))["agent_id"] is None


async def test_payload_too_large_and_the_exact_limit(relay: RelayEmulator) -> None:
    fits = {"message": ""}
    fits["message"] = "x" * (MAX_PAYLOAD_BYTES - payload_size(fits))
    assert payload_size(fits) == MAX_PAYLOAD_BYTES
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        frame = await refused(peer, event(payload=HUGE))
        assert frame["code"] == "PAYLOAD_TOO_LARGE" and frame["agent_id"] == "athena"
        # Size is checked before the agent is looked up.
        assert (await refused(peer, event(agent_id="nobody", payload=HUGE)))["code"] == (
            "PAYLOAD_TOO_LARGE"
        )
        assert (await peer.submit("klyve", "t", fits))["type"] == "accepted"


async def test_agent_not_found(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        frame = await refused(peer, event(agent_id="nobody"))
    assert frame["code"] == "AGENT_NOT_FOUND" and frame["agent_id"] == "nobody"


async def test_not_allowed_after_not_found(make_relay: MakeRelay) -> None:
    async with (
        make_relay(allowed_agents={"test": frozenset({"klyve"})}) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as peer,
    ):
        assert (await refused(peer, event(agent_id="athena")))["code"] == "NOT_ALLOWED"
        assert (await refused(peer, event(agent_id="nobody")))["code"] == "AGENT_NOT_FOUND"
        assert (await peer.submit("klyve", "t", app_message()))["type"] == "accepted"
        relay.set_allowed_agents("test", None)
        assert (await peer.submit("athena", "t2", app_message()))["type"] == "accepted"


@pytest.mark.parametrize("agent_id", ["offline", "scout"])
async def test_agent_offline(relay: RelayEmulator, agent_id: str) -> None:
    # "offline" is a built-in that never connects; "scout" is external and not connected.
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        frame = await refused(peer, event(agent_id=agent_id))
    assert frame == {
        "type": "error",
        "event_id": None,
        "agent_id": agent_id,
        "error": "Agent not connected",
        "code": "AGENT_OFFLINE",
    }


async def test_agent_set_offline_and_back_online(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        relay.set_agent_offline("athena")
        assert (await refused(peer, event()))["code"] == "AGENT_OFFLINE"
        relay.set_agent_online("athena")
        assert (await peer.submit("athena", "t", app_message()))["type"] == "accepted"


async def test_agent_error_after_tokens(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        accepted = await peer.submit("broken", "t", app_message())
        *tokens, error = await peer.until_terminal(accepted["event_id"])
    assert len(tokens) >= 2 and all(t["type"] == "token" for t in tokens)
    assert error["type"] == "error" and error["code"] == "AGENT_ERROR"
    assert error["event_id"] == accepted["event_id"] and error["agent_id"] == "broken"


async def test_agent_timeout(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        accepted = await peer.submit("sleepy", "t", app_message())
        (error,) = await peer.until_terminal(accepted["event_id"])
    assert error["code"] == "AGENT_TIMEOUT" and error["event_id"] == accepted["event_id"]


async def test_relay_side_event_timeout_ends_a_stalled_stream(make_relay: MakeRelay) -> None:
    async with (
        make_relay(event_timeout_s=0.1) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as peer,
    ):
        accepted = await peer.submit("stall", "t", app_message())
        *tokens, error = await peer.until_terminal(accepted["event_id"])
        assert tokens and error["code"] == "AGENT_TIMEOUT"
        assert relay.in_flight("test") == 0


async def test_injected_refusals_then_normal_service(relay: RelayEmulator) -> None:
    relay.fail_next_events(2, "AGENT_OFFLINE")
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        # Invalid frames do not consume injected failures.
        assert (await refused(peer, event(thread_id="")))["code"] == "INVALID_MESSAGE"
        assert (await refused(peer, event()))["code"] == "AGENT_OFFLINE"
        assert (await refused(peer, event(agent_id="klyve")))["code"] == "AGENT_OFFLINE"
        assert (await peer.submit("klyve", "t", app_message()))["type"] == "accepted"


async def test_injected_agent_failure_comes_after_accepted(relay: RelayEmulator) -> None:
    relay.fail_next_events(1, "AGENT_ERROR", "boom", agent_id="athena")
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        first = await peer.submit("klyve", "t", app_message())  # another agent: unaffected
        assert (await peer.until_terminal(first["event_id"]))[-1]["type"] == "reply"
        accepted = await peer.submit("athena", "t", app_message())
        assert accepted["type"] == "accepted"
        assert await peer.until_terminal(accepted["event_id"]) == [
            {
                "type": "error",
                "event_id": accepted["event_id"],
                "agent_id": "athena",
                "error": "boom",
                "code": "AGENT_ERROR",
            }
        ]
