"""Run streams against the real database, Redis buffer and channel layer."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from project.tasks.models import Comment, Task
from relaybridge.buffers import RedisStreamBuffer
from relaybridge.models import AgentRun
from relaybridge.streams import RunStatusMessage
from relaybridge.worker.run_streams import RunStreams
from tests.stacks import stream_layer

from .conftest import free_tcp_port
from .stack import GroupListener, accepted_run, listen, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]


def _streaming_run() -> AgentRun:
    task = Task.objects.create(title="Adopted")
    comment = Comment.objects.create(task=task, body="@athena go")
    run = AgentRun.objects.get(comment=comment)
    AgentRun.objects.filter(pk=run.pk).update(
        status=AgentRun.Status.STREAMING, event_id=f"evt_{uuid.uuid4().hex[:8]}"
    )
    return AgentRun.objects.get(pk=run.pk)


def _streams(buffer: Any, **options: Any) -> RunStreams:
    defaults: dict[str, Any] = {"flush_interval": 0.0, "stall_timeout": 120.0}
    return RunStreams(stream_layer(), buffer, **defaults | options)


async def drained(streams: RunStreams, listener: GroupListener, run: AgentRun) -> None:
    """Wait until the streams have done all their work and every push they made has
    reached ``listener``: a marker pushed after them, on the same layer, arrived."""
    from relaybridge.streams import group_name_for_thread

    assert await streams.wait_idle(5.0), "the streams never finished their work"
    marker: RunStatusMessage = {
        "type": "run.status",
        "run": "marker",
        "agent_id": "",
        "agent_name": "",
        "comment_id": "",
        "status": "",
        "retry_in": None,
        "code": "",
        "message": "",
        "text": "",
        "seq": 0,
        "attempt": 0,
        "parts": 0,
        "status_text": "",
        "writing_text": "",
        "status_template": "",
        "html": "",
    }
    await streams.push(group_name_for_thread(run.thread_key), marker)
    await wait_for(lambda: listener.events("run.status", "marker"), what="the marker")


async def test_an_adopted_run_continues_its_sequence(redis_stack: str) -> None:
    buffer = RedisStreamBuffer(aioredis.Redis.from_url(redis_stack), prefix=f"t:{uuid.uuid4()}")
    run = await sync_to_async(_streaming_run)()
    run_id = str(run.run_id)
    # An earlier worker streamed five pushes of this run before it died.
    await buffer.replace(run_id, "Hello from before", 5)
    listener = await listen(run.thread_key)
    streams = _streams(buffer)
    await streams.open(run)
    # (Not ending in "r", which could start a token and would wait for the next delta.)
    streams.stream(run_id).add_token(" and after.")
    await drained(streams, listener, run)
    [delta] = listener.events("run.delta", run_id)
    assert delta["seq"] == 6 and delta["text"] == " and after."
    assert await buffer.snapshot(run_id) == ("Hello from before and after.", 6)
    await buffer.clear(run_id)
    await buffer.close()


async def test_a_broken_buffer_costs_the_snapshot_not_the_stream(redis_stack: str) -> None:
    # A Redis client pointed at a port where nothing listens: every call fails, fast.
    dead = aioredis.Redis(
        host="127.0.0.1",
        port=free_tcp_port(),
        socket_connect_timeout=0.2,
        retry=Retry(NoBackoff(), 0),
    )
    buffer = RedisStreamBuffer(dead, prefix="unreachable")
    run = await sync_to_async(_streaming_run)()
    run_id = str(run.run_id)
    streams = _streams(buffer)
    # None of these raise: the frame handlers carry on without the buffer.
    stream = await streams.open(run)
    stream.add_token("still")
    assert await streams.wait_idle(5.0)
    stream.add_token(" streaming")
    assert await streams.wait_idle(5.0)
    assert stream.seq == 2
    await streams.fail(run_id, "AGENT_ERROR", "boom", retry=False)
    failed = await sync_to_async(lambda: AgentRun.objects.get(pk=run.pk))()
    assert failed.status == AgentRun.Status.FAILED
    assert failed.error_code == "AGENT_ERROR"


async def test_tokens_of_a_stopped_run_are_dropped(redis_stack: str) -> None:
    from relaybridge import services

    buffer = RedisStreamBuffer(aioredis.Redis.from_url(redis_stack), prefix=f"t:{uuid.uuid4()}")
    run = await sync_to_async(accepted_run)("Stopped")
    run_id = str(run.run_id)
    # Someone pressed Stop before the first token arrived.
    await sync_to_async(services.mark_stopped)(run_id, "")
    run = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
    listener = await listen(run.thread_key)
    streams = _streams(buffer)
    stream = await streams.open(run)
    stream.add_token("late")
    stream.add_token(" tokens")
    await drained(streams, listener, run)
    assert listener.events("run.delta", run_id) == []
    assert await buffer.snapshot(run_id) == ("", 0)
    assert await sync_to_async(lambda: AgentRun.objects.get(pk=run.pk).status)() == "stopped"
    await buffer.close()


async def test_a_run_stopped_while_carried_keeps_at_most_its_first_token(
    redis_stack: str,
) -> None:
    """The first token goes out before the write that would find the run stopped;
    that write ends the run, and nothing after it is pushed or buffered."""
    from relaybridge import services

    buffer = RedisStreamBuffer(aioredis.Redis.from_url(redis_stack), prefix=f"t:{uuid.uuid4()}")
    run = await sync_to_async(accepted_run)("Stopped while carried")
    run_id = str(run.run_id)
    listener = await listen(run.thread_key)
    streams = _streams(buffer)
    stream = await streams.open(run)
    await sync_to_async(services.mark_stopped)(run_id, "")
    stream.add_token("first")
    assert await streams.wait_idle(5.0)  # the first token's write found the run stopped
    stream.add_token(" second")
    stream.add_token(" third")
    await drained(streams, listener, run)
    assert [d["text"] for d in listener.events("run.delta", run_id)] == ["first"]
    assert await buffer.snapshot(run_id) == ("first", 1)
    stopped = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
    assert stopped.status == AgentRun.Status.STOPPED and stopped.first_token_at is None
    await buffer.clear(run_id)
    await buffer.close()


async def test_a_streaming_run_is_touched_well_within_a_short_stall_timeout(
    redis_stack: str,
) -> None:
    """With a stall timeout at or below the five-second touch interval, a run that was
    streaming steadily looked stalled to the watchdog between two touches."""
    buffer = RedisStreamBuffer(aioredis.Redis.from_url(redis_stack), prefix=f"t:{uuid.uuid4()}")
    run = await sync_to_async(_streaming_run)()
    run_id = str(run.run_id)
    now = [100.0]
    streams = _streams(buffer, stall_timeout=2.0, clock=lambda: now[0])
    stream = await streams.open(run)
    stream.add_token("one")
    assert await streams.wait_idle(5.0)

    def updated_at() -> Any:
        return AgentRun.objects.get(pk=run.pk).updated_at

    before = await sync_to_async(updated_at)()
    now[0] += 0.6  # over a quarter of the stall timeout, far under the old five seconds
    stream.add_token(" two")
    assert await streams.wait_idle(5.0)  # the progress write is made beside the stream
    assert await sync_to_async(updated_at)() > before
    await buffer.clear(run_id)
    await buffer.close()
