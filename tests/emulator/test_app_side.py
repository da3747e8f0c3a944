"""The app endpoint: discovery, the streamed lifecycle, FIFO answers, late delivery."""

from __future__ import annotations

import asyncio

from relaybridge.emulator import RelayEmulator
from relaybridge.emulator.agents import summarize
from relaybridge.testing import TEST_APP_TOKEN

from .conftest import MakeRelay
from .wire import Frame, app_message, open_peer

MENTION = app_message(
    task_id="task-123",
    task_title="Q2 Roadmap Review",
    sender={"id": 7, "name": "Dana"},
    comments=[{"author": "Lee", "text": "first"}, {"author": "Kim", "text": "second"}],
    relaybridge_run="run-1",
)


async def test_discover_lists_builtin_and_external_agents_without_presence(
    relay: RelayEmulator,
) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        await peer.send({"type": "discover"})
        frame = await peer.recv()
    assert frame["type"] == "agents"
    ids = [agent["agent_id"] for agent in frame["agents"]]
    assert ids[:2] == ["athena", "klyve"]
    assert {"offline", "broken", "sleepy", "stall", "slow", "scout"} <= set(ids)
    assert ids.count("athena") == 1  # a built-in with an external token is listed once
    for agent in frame["agents"]:
        assert set(agent) == {"agent_id", "name", "description"}
        assert agent["name"] and agent["description"]


async def test_discover_respects_the_allow_list(make_relay: MakeRelay) -> None:
    async with (
        make_relay(allowed_agents={"test": frozenset({"klyve"})}) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as peer,
    ):
        await peer.send({"type": "discover"})
        assert [a["agent_id"] for a in (await peer.recv())["agents"]] == ["klyve"]


async def test_full_streamed_lifecycle(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        accepted = await peer.submit("athena", "task-123", MENTION)
        assert accepted["type"] == "accepted"
        assert accepted["status"] == "accepted"
        assert accepted["agent_id"] == "athena"
        assert accepted["event_id"].startswith("evt_")
        assert accepted["session_key"] == "relay:athena:test:task-123"
        frames = await peer.until_terminal(accepted["event_id"])

    *tokens, reply = frames
    assert len(tokens) > 5
    assert all(t["type"] == "token" and t["agent_id"] == "athena" for t in tokens)
    assert tokens[1]["token"].startswith(" ")  # fragments carry their own spaces
    text = "".join(t["token"] for t in tokens)
    assert reply["type"] == "reply"
    assert reply["reply"] == text == summarize(MENTION)
    assert "Q2 Roadmap Review" in text and "@athena summarize this task" in text
    assert "2 comments" in text
    assert reply["thread_id"] == "task-123"
    assert reply["payload"] == MENTION  # echo, including our run reference
    assert "content" not in reply
    meta = reply["metadata"]
    assert meta["session_key"] == "relay:athena:test:task-123"
    assert meta["tokens_used"] == len(tokens)
    assert meta["model"] and isinstance(meta["latency_ms"], int)
    assert relay.open_event_ids == []


async def test_klyve_echoes_the_message(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        accepted = await peer.submit("klyve", "t", {"message": "hello  there\nfriend"})
        *tokens, reply = await peer.until_terminal(accepted["event_id"])
    assert reply["reply"] == "hello  there\nfriend" == "".join(t["token"] for t in tokens)


async def test_slow_agent_streams_with_its_own_delay(make_relay: MakeRelay) -> None:
    async with (
        make_relay(agent_delay_ms={"slow": 2}) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as peer,
    ):
        accepted = await peer.submit("slow", "t", app_message())
        *_, reply = await peer.until_terminal(accepted["event_id"])
    assert reply["type"] == "reply"


async def test_app_ping_gets_pong(relay: RelayEmulator) -> None:
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        for _ in range(3):
            await peer.send({"type": "ping"})
            assert await peer.recv() == {"type": "pong"}


async def test_interleaved_threads_keep_fifo_answers(relay: RelayEmulator) -> None:
    """Events sent back to back are answered in order, while streams interleave."""
    sends = [("athena", f"task-{n}") for n in range(4)] + [("klyve", "task-9"), ("nobody", "x")]
    async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
        for agent_id, thread_id in sends:
            await peer.send(
                {
                    "type": "event",
                    "agent_id": agent_id,
                    "thread_id": thread_id,
                    "payload": app_message(thread=thread_id),
                }
            )
        answers: list[Frame] = []
        streams: dict[str, list[Frame]] = {}
        open_ids: set[str] = set()
        while len(answers) < len(sends) or open_ids:
            frame = await peer.recv()
            if frame["type"] == "accepted" or frame.get("event_id") is None:
                answers.append(frame)
                if frame["type"] == "accepted":
                    open_ids.add(frame["event_id"])
                continue
            streams.setdefault(frame["event_id"], []).append(frame)
            if frame["type"] in {"reply", "error"}:
                open_ids.discard(frame["event_id"])

    # One answer per event, in submission order, each matching what was sent.
    assert [a["type"] for a in answers] == ["accepted"] * 5 + ["error"]
    for answer, (agent_id, thread_id) in zip(answers[:5], sends, strict=False):
        assert answer["session_key"] == f"relay:{agent_id}:test:{thread_id}"
    assert answers[5]["code"] == "AGENT_NOT_FOUND" and answers[5]["agent_id"] == "nobody"
    for answer, (_, thread_id) in zip(answers[:5], sends, strict=False):
        *tokens, reply = streams[answer["event_id"]]
        assert reply["type"] == "reply" and reply["thread_id"] == thread_id
        assert reply["payload"]["thread"] == thread_id
        assert reply["reply"] == "".join(t["token"] for t in tokens)


async def test_late_frames_go_to_the_apps_new_connection(make_relay: MakeRelay) -> None:
    async with make_relay(agent_delay_ms={"slow": 20}) as relay:
        async with open_peer(relay.url, TEST_APP_TOKEN) as first:
            accepted = await first.submit("slow", "t-late", app_message())
            assert (await first.recv())["type"] == "token"
            assert relay.drop_app_connections() == 1
            async with open_peer(relay.url, TEST_APP_TOKEN) as second:
                rest = await second.until_terminal(accepted["event_id"])
        assert rest[-1]["type"] == "reply"
        assert rest[-1]["reply"].endswith("".join(f["token"] for f in rest[:-1]))


async def test_frames_without_an_app_connection_are_dropped(make_relay: MakeRelay) -> None:
    async with make_relay() as relay:
        async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
            accepted = await peer.submit("slow", "t", app_message())
        async with asyncio.timeout(3):
            await relay.wait_for_event(accepted["event_id"])
        assert relay.stats.frames_undeliverable > 0
