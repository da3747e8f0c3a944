"""The browser's stream socket against the real ASGI app and a real Redis layer."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from project.tasks.models import Task
from relaybridge import streams
from relaybridge.buffers import RedisStreamBuffer
from relaybridge.consumers import CLOSE_FORBIDDEN, CLOSE_NOT_FOUND
from relaybridge.models import AgentRun
from tests.stacks import stream_layer

from .conftest import cookie_for, received_before_marker, socket

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


async def refused_with(communicator: WebsocketCommunicator) -> int:
    """The close code of a refused socket, whether refused before or after accept."""
    connected, code = await communicator.connect()
    if not connected:
        return int(code)
    message = await communicator.receive_output(timeout=2)
    assert message["type"] == "websocket.close", message
    return int(message["code"])


class WorkerDouble:
    """Pushes deltas the way a run's stream does: buffer first, then the group."""

    def __init__(self, redis_url: str, run: AgentRun) -> None:
        self.buffer = RedisStreamBuffer.from_url(redis_url)
        self.run_id = str(run.run_id)
        self.group = streams.group_name_for_thread(run.thread_key)

    async def push(self, message: streams.BrowserMessage) -> None:
        await stream_layer().group_send(self.group, streams.group_message(message))

    async def delta(self, seq: int) -> None:
        await self.buffer.append(self.run_id, seq, f"word{seq} ")
        await self.push(streams.delta_event(self.run_id, seq, f"word{seq} "))

    async def close(self) -> None:
        await self.buffer.clear(self.run_id)
        await self.buffer.close()


async def test_an_unauthenticated_socket_is_refused(redis_stack: str, task: Task) -> None:
    communicator = socket(task.pk)
    assert await refused_with(communicator) == CLOSE_FORBIDDEN
    await communicator.disconnect()


async def test_a_user_the_adapter_refuses_is_refused(
    redis_stack: str, staff_only: None, task: Task, make_user: Callable[..., Any]
) -> None:
    cookie = await cookie_for(make_user, "bob")
    communicator = socket(task.pk, cookie)
    assert await refused_with(communicator) == CLOSE_FORBIDDEN
    await communicator.disconnect()


async def test_an_unknown_thread_is_refused_as_not_found(
    redis_stack: str, task: Task, make_user: Callable[..., Any]
) -> None:
    cookie = await cookie_for(make_user)
    for ref in (task.pk + 1000, "not-a-number"):
        communicator = socket(ref, cookie)
        assert await refused_with(communicator) == CLOSE_NOT_FOUND
        await communicator.disconnect()


async def test_a_foreign_origin_is_refused(
    redis_stack: str, task: Task, make_user: Callable[..., Any]
) -> None:
    cookie = await cookie_for(make_user)
    communicator = WebsocketCommunicator(
        socket(task.pk, cookie).application,
        f"/ws/tasks/{task.pk}/",
        headers=[(b"origin", b"https://evil.example"), (b"cookie", f"sessionid={cookie}".encode())],
    )
    connected, _code = await communicator.connect()
    assert not connected
    await communicator.disconnect()


async def test_an_authorized_user_gets_the_snapshot_first(
    redis_stack: str,
    staff_only: None,
    task: Task,
    make_user: Callable[..., Any],
    make_run: Callable[..., AgentRun],
) -> None:
    queued = await sync_to_async(make_run)(AgentRun.Status.QUEUED)
    await sync_to_async(make_run)(AgentRun.Status.REPLIED)  # ended: not in the snapshot
    cookie = await cookie_for(make_user, "carol", is_staff=True)
    communicator = socket(task.pk, cookie)
    connected, _ = await communicator.connect()
    assert connected
    snapshot = await communicator.receive_json_from(timeout=2)
    assert snapshot["type"] == "snapshot"
    assert [(r["run"], r["status"], r["text"], r["seq"]) for r in snapshot["runs"]] == [
        (str(queued.run_id), "queued", "", 0)
    ]
    assert snapshot["runs"][0]["agent_name"]
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=2) == {"type": "pong"}
    await communicator.send_json_to({"type": "anything else"})
    # The socket handles a page's messages in order: the next pong proves that
    # "anything else" was answered with nothing.
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=2) == {"type": "pong"}
    await communicator.disconnect()


async def test_joining_mid_stream_gets_the_snapshot_then_every_later_delta_once(
    redis_stack: str, task: Task, make_user: Callable[..., Any], make_run: Callable[..., AgentRun]
) -> None:
    run = await sync_to_async(make_run)(AgentRun.Status.STREAMING)
    cookie = await cookie_for(make_user)
    worker = WorkerDouble(redis_stack, run)
    try:
        for seq in (1, 2, 3):
            await worker.delta(seq)
        communicator = socket(task.pk, cookie)
        connected, _ = await communicator.connect()
        assert connected
        snapshot = await communicator.receive_json_from(timeout=2)
        assert snapshot["type"] == "snapshot"
        (state,) = snapshot["runs"]
        assert (state["run"], state["text"], state["seq"]) == (
            str(run.run_id),
            "word1 word2 word3 ",
            3,
        )

        # A delta already in the snapshot that reaches the group after the join (the
        # race the join-then-read order allows) is not sent twice.
        await worker.push(streams.delta_event(str(run.run_id), 3, "word3 "))
        for seq in (4, 5, 6):
            await worker.delta(seq)
        received = [await communicator.receive_json_from(timeout=2) for _ in range(3)]
        assert [(m["type"], m["seq"], m["text"]) for m in received] == [
            ("run.delta", 4, "word4 "),
            ("run.delta", 5, "word5 "),
            ("run.delta", 6, "word6 "),
        ]
        assert await received_before_marker(communicator, worker.group) == []
        text = state["text"] + "".join(m["text"] for m in received)
        assert text == "".join(f"word{seq} " for seq in range(1, 7))
        await communicator.disconnect()
    finally:
        await worker.close()


async def test_status_reply_and_error_are_forwarded(
    redis_stack: str, task: Task, make_user: Callable[..., Any], make_run: Callable[..., AgentRun]
) -> None:
    run = await sync_to_async(make_run)(AgentRun.Status.ACCEPTED)
    cookie = await cookie_for(make_user)
    worker = WorkerDouble(redis_stack, run)
    run_id = str(run.run_id)
    communicator = socket(task.pk, cookie)
    try:
        assert (await communicator.connect())[0]
        assert (await communicator.receive_json_from(timeout=2))["type"] == "snapshot"
        run.status = AgentRun.Status.STREAMING
        status = await sync_to_async(streams.status_event)(run)
        error = streams.error_event(run_id, "agent_offline", "Athena is offline", 4.0)
        reply = streams.reply_event(run_id, 7, "<p>Done.</p>", "athena")
        await worker.push(status)
        await worker.delta(1)
        await worker.push(error)
        await worker.push(reply)
        await worker.delta(2)  # after the reply: dropped
        got = [await communicator.receive_json_from(timeout=2) for _ in range(4)]
        assert [m["type"] for m in got] == ["run.status", "run.delta", "run.error", "run.reply"]
        # Alice did not ask: her page gets the run without its Stop button.
        assert got[0] == streams.for_viewer(status, False) and "control_html" in status
        assert got[2] == error and got[3] == reply
        assert await received_before_marker(communicator, worker.group) == []
    finally:
        await communicator.disconnect()
        await worker.close()


async def test_a_delta_after_a_gap_brings_the_whole_text_not_just_its_own(
    redis_stack: str, task: Task, make_user: Callable[..., Any], make_run: Callable[..., AgentRun]
) -> None:
    run = await sync_to_async(make_run)(AgentRun.Status.STREAMING)
    run_id = str(run.run_id)
    cookie = await cookie_for(make_user)
    worker = WorkerDouble(redis_stack, run)
    communicator = socket(task.pk, cookie)
    try:
        for seq in (1, 2, 3):
            await worker.delta(seq)
        # The buffer lost the run's keys (Redis restarted empty) just as a page
        # connected: its snapshot has no text at all.
        await worker.buffer.clear(run_id)
        assert (await communicator.connect())[0]
        snapshot = await communicator.receive_json_from(timeout=2)
        assert [(r["text"], r["seq"]) for r in snapshot["runs"]] == [("", 0)]

        # The worker writes its whole text back, then pushes its next delta. That
        # delta alone would show the page "word4 " where other pages show four words.
        await worker.buffer.replace(run_id, "word1 word2 word3 word4 ", 4)
        await worker.push(streams.delta_event(run_id, 4, "word4 "))
        caught_up = await communicator.receive_json_from(timeout=2)
        assert (caught_up["type"], caught_up["status"]) == ("run.status", "streaming")
        assert (caught_up["text"], caught_up["seq"]) == ("word1 word2 word3 word4 ", 4)
        await worker.delta(5)
        following = await communicator.receive_json_from(timeout=2)
        assert (following["type"], following["seq"], following["text"]) == (
            "run.delta",
            5,
            "word5 ",
        )
        assert await communicator.receive_nothing(timeout=0.3)
    finally:
        await communicator.disconnect()
        await worker.close()
