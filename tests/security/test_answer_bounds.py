"""An agent that sends too much, or for too long, costs its own run and nothing else.

Hostile answers are put on the worker's connection with the emulator's raw mode
(:mod:`relaybridge.emulator.raw`), as frames about a run in flight (the ``stall``
agent: accepted, a few words, then silence), while the worker runs in the test's
event loop against the emulator, a real Redis and the test database. Pages are
real sockets through the ASGI app (:mod:`tests.consumers.conftest`).

* an answer past ``RELAYBRIDGE_MAX_ANSWER_CHARS``, streamed or in one reply frame
  (5 MiB, above the 4 MiB frames the worker once accepted), fails its run with the
  text up to the cap kept; the connection and other answers carry on;
* an answer that trickles past ``RELAYBRIDGE_MAX_ANSWER_SECONDS`` fails its run;
* no message to a page is larger than a safe fraction of Daphne's 1 MiB frame.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model

from project.tasks.models import Task
from relaybridge import streams
from relaybridge.buffers import RedisStreamBuffer
from relaybridge.conf import DEFAULTS
from relaybridge.models import AgentRun
from relaybridge.protocol import ErrorCode
from tests.consumers.conftest import create_run, session_cookie, socket
from tests.worker.stack import (
    GroupListener,
    post_mention,
    post_watched_mention,
    relay_stack,
    run_status,
    runs_for,
    wait_for,
)

from .test_hostile_frames import SHUTDOWN_S, assert_a_new_mention_is_answered, connections

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

Status = AgentRun.Status
CAP = DEFAULTS["MAX_ANSWER_CHARS"]
#: What a page may be sent in one frame: half of Daphne's 1 MiB websocket limit.
SAFE_FRAME_BYTES = 512 * 1024
#: One character that takes 12 bytes once JSON-escaped (a surrogate pair of \uXXXX).
WIDE = "\U0001f600"


def run_row(run_id: Any) -> dict[str, Any]:
    fields = ("status", "event_id", "error_code", "error_message", "partial_text")
    row: dict[str, Any] = AgentRun.objects.filter(run_id=run_id).values(*fields).get()
    return row


async def watched_stall_run() -> tuple[AgentRun, GroupListener]:
    """A ``stall`` run that streamed its few words and went silent, and its group."""
    comment, listener = await post_watched_mention("@stall take your time")
    [run] = await runs_for(comment)
    await wait_for(lambda: run_status(run.run_id) == Status.STREAMING, what="the stall run")
    return run, listener


async def send_frame(relay: Any, frame: dict[str, Any]) -> None:
    assert await relay.raw.send(json.dumps(frame)) == 1, "the worker's connection is gone"


async def test_a_streamed_answer_past_the_cap_fails_its_run_keeping_the_text_up_to_it(
    redis_stack: str,
) -> None:
    async with relay_stack(redis_stack, shutdown_timeout=SHUTDOWN_S) as (worker, relay):
        run, listener = await watched_stall_run()
        event_id = (await sync_to_async(run_row)(run.run_id))["event_id"]
        token = {"type": "token", "event_id": event_id, "agent_id": "stall"}
        flood = "x" * (CAP + 50_000)
        await send_frame(relay, {**token, "token": flood})
        await wait_for(
            lambda: run_status(run.run_id) == Status.FAILED, what="the run to fail as too long"
        )
        # Frames that still come for it change nothing, and a later mention is answered
        # (one connection is read in order: the frames above were read before its reply).
        await send_frame(relay, {**token, "token": "MORE"})
        await assert_a_new_mention_is_answered("anyone there?")

        row = await sync_to_async(run_row)(run.run_id)
        assert row["error_code"] == ErrorCode.ANSWER_TOO_LONG
        assert "MAX_ANSWER_CHARS" not in row["error_message"], "a setting name shown to people"
        assert len(row["partial_text"]) == CAP
        assert row["partial_text"] == ("I am working on it" + flood)[:CAP]
        deltas = listener.events("run.delta", str(run.run_id))
        assert max(len(delta["text"]) for delta in deltas) <= streams.PAGE_TEXT_CHARS
        assert listener.streamed_text(str(run.run_id)) == row["partial_text"]
        [error] = listener.events("run.error", str(run.run_id))
        assert error["code"] == ErrorCode.ANSWER_TOO_LONG
        assert connections(worker) == 1


async def test_a_reply_frame_of_5_mib_fails_its_run_and_leaves_the_connection_and_others_alone(
    redis_stack: str,
) -> None:
    async with relay_stack(redis_stack, shutdown_timeout=SHUTDOWN_S) as (worker, relay):
        run, _listener = await watched_stall_run()
        # Another person's answer, streaming meanwhile on the same connection.
        other = await post_mention("@klyve " + "word " * 200, title="Someone else's task")
        [other_run] = await runs_for(other)
        await wait_for(
            lambda: run_status(other_run.run_id) == Status.STREAMING, what="the other answer"
        )
        row = await sync_to_async(run_row)(run.run_id)
        huge = "y" * (5 * 1024 * 1024)
        await send_frame(
            relay,
            {
                "type": "reply",
                "event_id": row["event_id"],
                "agent_id": "stall",
                "thread_id": run.thread_id,
                "reply": huge,
                "metadata": {},
            },
        )
        await wait_for(
            lambda: run_status(run.run_id) == Status.FAILED, what="the run to fail as too long"
        )
        await wait_for(
            lambda: run_status(other_run.run_id) == Status.REPLIED,
            within=30,
            what="the other answer's reply",
        )
        row = await sync_to_async(run_row)(run.run_id)
        assert row["error_code"] == ErrorCode.ANSWER_TOO_LONG
        assert row["partial_text"] == huge[:CAP]
        assert connections(worker) == 1, "the frame made the worker reconnect"
        await assert_a_new_mention_is_answered("still there?")


async def test_an_answer_that_trickles_past_the_longest_answer_time_fails(
    redis_stack: str,
) -> None:
    # The stall timeout is short, so a trickle of one token every 0.2 s is what keeps
    # the run from being failed as stalled; only the bound on duration can end it.
    async with relay_stack(
        redis_stack, shutdown_timeout=SHUTDOWN_S, stall_timeout=1.0, max_answer_seconds=2.0
    ) as (worker, relay):
        comment = await post_mention("@stall take your time")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.STREAMING, what="the stall run")
        event_id = (await sync_to_async(run_row)(run.run_id))["event_id"]

        drop = {"type": "token", "event_id": event_id, "agent_id": "stall", "token": "."}

        async def trickle() -> None:
            while True:
                await send_frame(relay, drop)
                await asyncio.sleep(0.2)

        dripping = asyncio.create_task(trickle())
        try:
            await wait_for(
                lambda: run_status(run.run_id) == Status.FAILED,
                within=15,
                what="the trickling run to fail",
            )
        finally:
            dripping.cancel()
            await asyncio.gather(dripping, return_exceptions=True)
        row = await sync_to_async(run_row)(run.run_id)
        assert row["error_code"] == ErrorCode.ANSWER_TOO_SLOW
        assert row["partial_text"].startswith("I am working on it.")
        assert connections(worker) == 1


async def test_a_page_joining_a_long_answer_gets_it_in_frames_well_within_the_limit(
    redis_stack: str,
) -> None:
    def setup() -> tuple[AgentRun, str, int]:
        task = Task.objects.create(title="A long answer")
        run = create_run(task, AgentRun.Status.STREAMING)
        user = get_user_model().objects.create_user("alice", password="pw")
        return run, session_cookie(user), task.pk

    run, cookie, task_pk = await sync_to_async(setup)()
    # Under the cap, but 12 bytes a character on the wire: 1.8 MB in one message.
    text = WIDE * 150_000
    buffer = RedisStreamBuffer.from_url(redis_stack)
    communicator = socket(task_pk, cookie)
    try:
        await buffer.replace(str(run.run_id), text, 7)
        connected, _ = await communicator.connect()
        assert connected
        frames = [await communicator.receive_from(timeout=5)]
        snapshot = json.loads(frames[0])
        [state] = snapshot["runs"]
        assert (state["text"], state["seq"]) == ("", 7)
        parts = []
        for _ in range(state["parts"]):
            frames.append(await communicator.receive_from(timeout=5))
            parts.append(json.loads(frames[-1]))
        assert [part["part"] for part in parts] == list(range(1, len(parts) + 1))
        assert {(part["type"], part["run"], part["seq"]) for part in parts} == {
            ("run.text", str(run.run_id), 7)
        }
        assert "".join(part["text"] for part in parts) == text
        assert max(len(frame.encode()) for frame in frames) <= SAFE_FRAME_BYTES
        assert text not in state["html"]
    finally:
        await communicator.disconnect()
        await buffer.clear(str(run.run_id))
        await buffer.close()


async def test_a_cut_off_answer_holds_its_thread_like_a_stopped_one_then_lets_go(
    redis_stack: str,
) -> None:
    """Relay has no cancel: the agent may still be answering, so the thread's next event
    waits (protocol §6.2), but for the stall timeout after the cut at most."""
    stall_timeout = 3.0
    async with relay_stack(
        redis_stack, shutdown_timeout=SHUTDOWN_S, stall_timeout=stall_timeout
    ) as (worker, relay):
        run, _listener = await watched_stall_run()
        event_id = (await sync_to_async(run_row)(run.run_id))["event_id"]
        flood = {"type": "token", "event_id": event_id, "agent_id": "stall", "token": "x" * CAP}
        await send_frame(relay, flood)
        await wait_for(lambda: run_status(run.run_id) == Status.FAILED, what="the cut-off run")
        task = await sync_to_async(lambda: Task.objects.get(comments__relaybridge_runs=run.pk))()
        again = await post_mention("@stall once more", task=task)
        [second] = await runs_for(again)
        await wait_for(
            lambda: run_status(second.run_id) == Status.STREAMING,
            within=stall_timeout + 10,
            what="the thread's next answer",
        )

        def times() -> tuple[Any, Any]:
            ended = AgentRun.objects.get(run_id=run.run_id).finished_at
            return ended, AgentRun.objects.get(run_id=second.run_id).sent_at

        ended, sent = await sync_to_async(times)()
        assert (sent - ended).total_seconds() >= stall_timeout
        assert connections(worker) == 1
