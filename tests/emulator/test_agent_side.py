"""The agent endpoint (protocol §8): external agents, pings, reconnects, terminal frames."""

from __future__ import annotations

import asyncio
import json

from websockets.asyncio.client import connect

from relaybridge.emulator import RelayEmulator
from relaybridge.testing import TEST_APP_TOKEN

from .conftest import ATHENA_EXTERNAL_TOKEN, SCOUT_TOKEN, MakeRelay
from .wire import app_message, open_peer


async def test_external_agent_written_with_plain_websockets(relay: RelayEmulator) -> None:
    """An agent that knows nothing of relaybridge answers an event through the emulator."""

    async def scout_agent() -> None:
        headers = {"Authorization": f"Bearer {SCOUT_TOKEN}"}
        async with connect(relay.agent_url, additional_headers=headers) as ws:
            connected.set()
            while True:
                frame = json.loads(await ws.recv())
                if frame["type"] == "ping":
                    await ws.send(json.dumps({"type": "pong"}))
                    continue
                assert frame["type"] == "event"
                seen.append(frame)
                for word in ["Scouting", " the", " area."]:
                    await ws.send(
                        json.dumps({"type": "token", "event_id": frame["event_id"], "token": word})
                    )
                await ws.send(
                    json.dumps(
                        {
                            "type": "reply",
                            "event_id": frame["event_id"],
                            "content": "Scouting the area.",
                            "metadata": {"tokens_used": 3, "model": "scout-1"},
                            "done": True,
                        }
                    )
                )

    seen: list[dict[str, object]] = []
    connected = asyncio.Event()
    agent = asyncio.create_task(scout_agent())
    try:
        async with asyncio.timeout(3):
            await connected.wait()
            await relay.wait_for_agent("scout")
        payload = app_message("@scout look around", task_id="task-5")
        async with open_peer(relay.url, TEST_APP_TOKEN) as app:
            accepted = await app.submit("scout", "task-5", payload)
            assert accepted["session_key"] == "relay:scout:test:task-5"
            frames = await app.until_terminal(accepted["event_id"])
    finally:
        agent.cancel()

    assert seen == [
        {
            "type": "event",
            "event_id": accepted["event_id"],
            "app_id": "test",
            "thread_id": "task-5",
            "session_key": "relay:test:task-5",
            "payload": payload,
        }
    ]
    *tokens, reply = frames
    assert [t["token"] for t in tokens] == ["Scouting", " the", " area."]
    assert all(t["agent_id"] == "scout" for t in tokens)
    assert reply == {
        "type": "reply",
        "event_id": accepted["event_id"],
        "agent_id": "scout",
        "thread_id": "task-5",
        "reply": "Scouting the area.",
        "payload": payload,
        "metadata": {
            "tokens_used": 3,
            "model": "scout-1",
            "session_key": "relay:scout:test:task-5",
        },
    }


async def test_external_agent_replaces_the_builtin_while_connected(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as app:
        async with open_peer(relay.agent_url, ATHENA_EXTERNAL_TOKEN) as agent:
            accepted = await app.submit("athena", "t", app_message())
            frame = await agent.recv_skipping_pings()
            assert frame["event_id"] == accepted["event_id"]
            await agent.send(
                {"type": "reply", "event_id": frame["event_id"], "content": "from outside"}
            )
            (reply,) = await app.until_terminal(accepted["event_id"])
            assert reply["reply"] == "from outside" and reply["metadata"] == {
                "session_key": "relay:athena:test:t"
            }
        async with asyncio.timeout(3):
            await relay.wait_for_agent("athena", connected=False)
        # With the external agent gone, the built-in answers again.
        accepted = await app.submit("athena", "t2", app_message())
        assert (await app.until_terminal(accepted["event_id"]))[-1]["reply"].startswith("Summary")


async def test_relay_pings_agents_and_answers_their_pings(make_relay: MakeRelay) -> None:
    async with (
        make_relay(agent_ping_interval_s=0.01) as relay,
        open_peer(relay.agent_url, query=SCOUT_TOKEN) as agent,
    ):
        assert await agent.recv() == {"type": "ping"}
        await agent.send({"type": "pong"})
        await agent.send({"type": "ping"})
        while (frame := await agent.recv()) == {"type": "ping"}:
            pass
        assert frame == {"type": "pong"}
        assert relay.stats.agent_pings_sent >= 1 and relay.stats.agent_pongs == 1


async def test_agent_reconnects_mid_answer_and_continues(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as app:
        async with open_peer(relay.agent_url, SCOUT_TOKEN) as first:
            accepted = await app.submit("scout", "t", app_message())
            event_id = (await first.recv_skipping_pings())["event_id"]
            await first.send({"type": "token", "event_id": event_id, "token": "Half"})
            assert (await app.recv())["token"] == "Half"
        async with open_peer(relay.agent_url, query=SCOUT_TOKEN) as second:
            await second.send({"type": "token", "event_id": event_id, "token": " done"})
            await second.send({"type": "reply", "event_id": event_id, "content": "Half done"})
            rest = await app.until_terminal(accepted["event_id"])
    assert [f.get("token", f.get("reply")) for f in rest] == [" done", "Half done"]


async def test_frames_on_any_connection_of_the_agent_count(relay: RelayEmulator) -> None:
    async with (
        open_peer(relay.url, TEST_APP_TOKEN) as app,
        open_peer(relay.agent_url, SCOUT_TOKEN) as one,
        open_peer(relay.agent_url, SCOUT_TOKEN) as two,
    ):
        await relay.wait_for_agent("scout")
        accepted = await app.submit("scout", "t", app_message())
        # The newest connection gets the event; the older one may answer it.
        event_id = (await two.recv_skipping_pings())["event_id"]
        await one.send({"type": "token", "event_id": event_id, "token": "a"})
        await two.send(
            {"type": "error", "event_id": event_id, "error": "late", "code": "AGENT_TIMEOUT"}
        )
        frames = await app.until_terminal(accepted["event_id"])
    assert [f["type"] for f in frames] == ["token", "error"]
    assert frames[1]["code"] == "AGENT_TIMEOUT" and frames[1]["agent_id"] == "scout"


async def test_frames_after_terminal_are_dropped(relay: RelayEmulator) -> None:
    async with (
        open_peer(relay.url, TEST_APP_TOKEN) as app,
        open_peer(relay.agent_url, SCOUT_TOKEN) as agent,
    ):
        first = await app.submit("scout", "a", app_message())
        second = await app.submit("scout", "b", app_message())
        id_a = (await agent.recv_skipping_pings())["event_id"]
        id_b = (await agent.recv_skipping_pings())["event_id"]
        await agent.send({"type": "reply", "event_id": id_a, "content": "final"})
        for late in (
            {"type": "token", "event_id": id_a, "token": "late"},
            {"type": "reply", "event_id": id_a, "content": "again"},
            {"type": "error", "event_id": id_a, "error": "x", "code": "AGENT_ERROR"},
            {"type": "token", "event_id": "evt_unknown", "token": "?"},
        ):
            await agent.send(late)
        # Frames of one agent connection are handled in order: B's token is the barrier.
        await agent.send({"type": "token", "event_id": id_b, "token": "b"})
        assert (await app.recv())["reply"] == "final"
        assert await app.recv() == {
            "type": "token",
            "event_id": second["event_id"],
            "agent_id": "scout",
            "token": "b",
        }
        assert first["event_id"] == id_a and relay.stats.frames_dropped == 4


async def test_an_agent_cannot_answer_another_agents_event(relay: RelayEmulator) -> None:
    async with (
        open_peer(relay.url, TEST_APP_TOKEN) as app,
        open_peer(relay.agent_url, SCOUT_TOKEN) as scout,
    ):
        stalled = await app.submit("stall", "t", app_message())
        await scout.send({"type": "reply", "event_id": stalled["event_id"], "content": "hijack"})
        await scout.send({"type": "ping"})
        assert await scout.recv_skipping_pings() == {"type": "pong"}
        assert stalled["event_id"] in relay.open_event_ids
        assert relay.stats.frames_dropped == 1


async def test_queue_offline_holds_events_until_the_agent_connects(make_relay: MakeRelay) -> None:
    async with (
        make_relay(queue_offline=True) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as app,
    ):
        accepted = await app.submit("scout", "t", app_message())
        assert accepted["type"] == "accepted"
        async with open_peer(relay.agent_url, SCOUT_TOKEN) as agent:
            event = await agent.recv_skipping_pings()
            assert event["event_id"] == accepted["event_id"]
            await agent.send({"type": "reply", "event_id": event["event_id"], "content": "late"})
            assert (await app.until_terminal(accepted["event_id"]))[-1]["reply"] == "late"


async def test_queue_offline_for_a_builtin_set_offline(make_relay: MakeRelay) -> None:
    async with (
        make_relay(queue_offline=True) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as app,
    ):
        relay.set_agent_offline("klyve")
        accepted = await app.submit("klyve", "t", {"message": "held"})
        assert accepted["type"] == "accepted"
        never = await app.submit("offline", "t", app_message())
        assert never["type"] == "accepted"  # queued; that agent never comes
        relay.set_agent_online("klyve")
        assert (await app.until_terminal(accepted["event_id"]))[-1]["reply"] == "held"
        assert relay.open_event_ids == [never["event_id"]]
