"""A relay worker fed garbage by Relay: it logs, carries on, and leaves its runs alone.

The worker runs in the test's event loop against the emulator on a loopback
port, a real Redis and the test database. The emulator's raw mode
(:mod:`relaybridge.emulator.raw`) puts each hostile message on the worker's
connection while a run is in flight (the ``stall`` agent: accepted, one token,
then silence). Afterwards that run's row is exactly as before, the worker never
dropped its connection, and a new mention still gets its reply — which also
proves every earlier frame was read, since one connection is read in order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from project.tasks.models import Comment
from relaybridge.conf import DEFAULTS
from relaybridge.models import AgentRun
from relaybridge.streams import PAGE_TEXT_CHARS
from relaybridge.testing import TEST_APP_ID
from relaybridge.worker.bridge import BridgeWorker
from relaybridge.worker.handshake import MAX_FRAME_BYTES
from tests.worker.stack import listen, post_mention, relay_stack, run_status, runs_for, wait_for

from .hostile_frames import hostile_messages

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

Status = AgentRun.Status
#: Line breaks, escapes and other C0/C1 controls: what forges or hides log lines.
CONTROL_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

#: The stall run never ends: the worker stops without waiting long for it.
SHUTDOWN_S = 1.0

#: Fields of a run that no frame about another event may change.
RUN_FIELDS = (
    "status",
    "event_id",
    "attempts",
    "error_code",
    "error_message",
    "partial_text",
    "reply_comment_id",
    "finished_at",
)


def run_fields(run_id: Any) -> dict[str, Any]:
    fields: dict[str, Any] = AgentRun.objects.filter(run_id=run_id).values(*RUN_FIELDS).get()
    return fields


async def stalled_run() -> AgentRun:
    """A run Relay accepted and that streamed a little, then went silent."""
    comment = await post_mention("@stall take your time")
    [run] = await runs_for(comment)
    await wait_for(lambda: run_status(run.run_id) == Status.STREAMING, what="the stall run")
    return run


async def assert_a_new_mention_is_answered(question: str) -> None:
    comment = await post_mention(f"@klyve {question}")
    [run] = await runs_for(comment)
    await wait_for(lambda: run_status(run.run_id) == Status.REPLIED, what="the klyve reply")

    def replies() -> list[str]:
        return list(
            Comment.objects.filter(task_id=comment.task_id, agent_id="klyve").values_list(
                "body", flat=True
            )
        )

    assert await sync_to_async(replies)() == [f"@klyve {question}"]


def connections(worker: BridgeWorker) -> int:
    assert worker.connection is not None, "the worker lost its leadership"
    return worker.connection.connections


# Hypothesis draws in a thread while the worker runs in this loop, and the channel layer
# draws from the global `random` (channels' new_channel, channels_redis' serializer).
# Hypothesis notices the global state moving during a draw and blames the strategies,
# which use no `random`; it cannot tell the two threads apart.
@pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)
async def test_hostile_frames_are_ignored_and_runs_in_flight_are_untouched(
    redis_stack: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relaybridge")
    async with relay_stack(redis_stack, shutdown_timeout=SHUTDOWN_S) as (worker, relay):
        run = await stalled_run()
        before = await sync_to_async(run_fields)(run.run_id)
        loop = asyncio.get_running_loop()
        delivered: list[str | bytes] = []

        # Hypothesis drives from a thread; the worker and the emulator keep running
        # in this loop, reading every message as it arrives.
        @settings(
            max_examples=500,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(st.lists(hostile_messages, min_size=1, max_size=4))
        def deliver(messages: list[str | bytes]) -> None:
            for message in messages:
                future = asyncio.run_coroutine_threadsafe(
                    relay.raw.send(message, app_id=TEST_APP_ID), loop
                )
                assert future.result(timeout=10) == 1, "the worker's connection is gone"
                delivered.append(message)

        await asyncio.to_thread(deliver)
        assert len(delivered) >= 500

        await assert_a_new_mention_is_answered("are you still there?")
        assert await sync_to_async(run_fields)(run.run_id) == before
        assert connections(worker) == 1, "a hostile frame made the worker reconnect"
        assert relay.raw.messages_sent == len(delivered)
    logged = caplog.text
    assert "ignoring a malformed frame from Relay" in logged
    assert "ignoring a frame for unknown event" in logged
    assert "Traceback" not in logged
    # Relay's text never forges a log line or a terminal escape: one record, one line.
    forged = [
        record.getMessage()[:200]
        for record in caplog.records
        if CONTROL_CHARACTERS.search(record.getMessage())
    ]
    assert forged == []


@pytest.mark.parametrize(
    "frame",
    [
        {"type": "token", "agent_id": "stall", "token": 42},
        {"type": "reply", "agent_id": "stall", "thread_id": "x", "reply": ["not", "text"]},
        {"type": "error", "agent_id": "stall", "error": None, "code": ""},
    ],
    ids=["token-number", "reply-list", "error-without-code"],
)
async def test_an_unreadable_frame_about_a_run_in_flight_fails_it_visibly_and_retryably(
    redis_stack: str, frame: dict[str, Any]
) -> None:
    async with relay_stack(redis_stack, shutdown_timeout=SHUTDOWN_S) as (worker, relay):
        run = await stalled_run()
        before = await sync_to_async(run_fields)(run.run_id)
        assert await relay.raw.send(json.dumps({**frame, "event_id": before["event_id"]})) == 1
        await wait_for(
            lambda: run_fields(run.run_id)["error_code"] == "RELAYBRIDGE_BAD_FRAME",
            what="the run to record the bad frame",
        )
        after = await sync_to_async(run_fields)(run.run_id)
        # Retried once (the policy for a bad frame), with the text so far kept.
        assert after["status"] in {Status.RETRYING, Status.QUEUED, Status.SENDING}, after
        assert after["reply_comment_id"] is None
        assert after["error_message"] and "42" not in after["error_message"]
        await assert_a_new_mention_is_answered("still fine?")
        assert connections(worker) == 1


async def test_a_frame_that_breaks_the_connection_costs_a_reconnect_and_nothing_else(
    redis_stack: str,
) -> None:
    """Not UTF-8, larger than any frame may be, or cut off mid-frame: the connection is
    lost (the WebSocket rules leave no choice) and the worker reconnects."""
    async with relay_stack(redis_stack, shutdown_timeout=SHUTDOWN_S) as (worker, relay):
        run = await stalled_run()
        before = await sync_to_async(run_fields)(run.run_id)
        breakers: list[Callable[[], Awaitable[int]]] = [
            lambda: relay.raw.send(b'{"type":"ping","x":"\xff\xfe"}', text=True),
            lambda: relay.raw.send("x" * (MAX_FRAME_BYTES + 1)),
        ]
        for count, breaker in enumerate(breakers, start=2):
            assert await breaker() == 1

            def reconnected(n: int = count) -> bool:
                return connections(worker) == n

            await wait_for(reconnected, what=f"connection {count}")
            await relay.wait_for_app(TEST_APP_ID)
        assert relay.raw.send_truncated(b'{"type":"token","token":"' + b"y" * 300 + b'"}') == 1
        await wait_for(lambda: connections(worker) == 4, what="connection 4")
        await relay.wait_for_app(TEST_APP_ID)

        await assert_a_new_mention_is_answered("back again?")
        assert await sync_to_async(run_fields)(run.run_id) == before


async def test_text_from_relay_cannot_forge_a_log_line(
    redis_stack: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relaybridge")
    forged = "\n2026-01-01 00:00:00,000 1 relaybridge.worker CRITICAL \x1b[2Jforged"
    frames = [
        {"type": "token", "event_id": f"evt_x{forged}", "agent_id": "athena", "token": "t"},
        {"type": "error", "event_id": None, "agent_id": "ghost", "error": forged, "code": "X"},
        {"type": "accepted", "event_id": f"evt_y{forged}", "agent_id": "a", "session_key": "k"},
    ]
    async with relay_stack(redis_stack, shutdown_timeout=SHUTDOWN_S) as (_worker, relay):
        await asyncio.wait_for(relay.wait_for_app(TEST_APP_ID), 10)
        for frame in frames:
            assert await relay.raw.send(json.dumps(frame)) == 1
        await assert_a_new_mention_is_answered("anything odd?")
    messages = [record.getMessage() for record in caplog.records]
    mentioned = [m for m in messages if "forged" in m]
    assert len(mentioned) >= 2, messages  # logged (escaped), not silently dropped
    assert not [m for m in mentioned if CONTROL_CHARACTERS.search(m)], mentioned
    assert any("\\n2026-01-01" in m and "\\x1b[2J" in m for m in mentioned), mentioned


async def test_frames_replayed_for_a_finished_run_change_nothing(redis_stack: str) -> None:
    """Relay repeats a replied run's event: a token, an error, a second, different reply."""
    async with relay_stack(redis_stack, shutdown_timeout=SHUTDOWN_S) as (worker, relay):
        comment = await post_mention("@klyve say it once")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.REPLIED, what="the reply")
        before = await sync_to_async(run_fields)(run.run_id)
        listener = await listen(run.thread_key)
        event = {"event_id": before["event_id"], "agent_id": "klyve"}
        replays = [
            {"type": "accepted", **event, "session_key": "relay:klyve:test:x"},
            {"type": "token", **event, "token": " and again"},
            {"type": "error", **event, "error": "late failure", "code": "AGENT_ERROR"},
            {"type": "reply", **event, "thread_id": run.thread_id, "reply": "a second answer"},
        ]
        for frame in replays:
            assert await relay.raw.send(json.dumps(frame)) == 1
        await assert_a_new_mention_is_answered("and now?")
        assert await sync_to_async(run_fields)(run.run_id) == before

        def agent_comments() -> list[str]:
            return list(
                Comment.objects.filter(task_id=comment.task_id, agent_id="klyve").values_list(
                    "body", flat=True
                )
            )

        assert await sync_to_async(agent_comments)() == ["@klyve say it once"]
        pushed = [m["event"] for m in listener.messages if m["event"].get("run") == str(run.run_id)]
        assert pushed == [], pushed
        assert connections(worker) == 1


async def test_a_huge_token_for_a_run_in_flight_is_taken_without_harm(redis_stack: str) -> None:
    """Within the frame limit but far beyond any real token (3 MB): one connection, the
    worker goes on answering, and only that run is cut off at the longest answer."""
    async with relay_stack(redis_stack, shutdown_timeout=SHUTDOWN_S) as (worker, relay):
        run = await stalled_run()
        before = await sync_to_async(run_fields)(run.run_id)
        listener = await listen(run.thread_key)
        event = {"event_id": before["event_id"], "agent_id": "stall"}
        huge = "word " * 600_000
        assert await relay.raw.send(json.dumps({"type": "token", **event, "token": huge})) == 1
        await assert_a_new_mention_is_answered("are you alive?")
        await wait_for(lambda: run_status(run.run_id) == Status.FAILED, what="the cut-off run")
        after = await sync_to_async(run_fields)(run.run_id)
        assert after["error_code"] == "RELAYBRIDGE_ANSWER_TOO_LONG"
        cap = DEFAULTS["MAX_ANSWER_CHARS"]
        assert after["partial_text"] == ("I am working on it" + huge)[:cap]
        assert connections(worker) == 1

        # The page got the text up to the cap (as text; the stream never renders HTML),
        # in deltas that each fit a websocket frame.
        await wait_for(
            lambda: listener.events("run.error", str(run.run_id)), what="the run's error push"
        )
        deltas = listener.events("run.delta", str(run.run_id))
        assert max(len(delta["text"]) for delta in deltas) <= PAGE_TEXT_CHARS
        # (The listener joined after the run's first words.)
        streamed = "".join(delta["text"] for delta in deltas)
        assert streamed == after["partial_text"][len("I am working on it") :]
