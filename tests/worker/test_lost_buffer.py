"""The text-so-far buffer losing a streaming run's keys: Redis restarted without
persistence, flushed, or an append that failed. A page that (re)connects reads the
buffer as the whole text so far, so it must never hold only the text after the loss.
"""

from __future__ import annotations

import functools
import uuid

import pytest
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async

from relaybridge.buffers import RedisStreamBuffer
from relaybridge.models import AgentRun
from relaybridge.protocol import TokenReceived
from relaybridge.worker.run_streams import RunStreams
from tests.redis_server import RedisServer
from tests.stacks import stream_layer

from .stack import accepted_run, listen, wait_for
from .test_runs import _streaming_run

pytestmark = [
    pytest.mark.redis,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("redis_stack"),
]


def _buffer(server: RedisServer) -> RedisStreamBuffer:
    return RedisStreamBuffer(aioredis.Redis.from_url(server.url), prefix=f"t:{uuid.uuid4()}")


def _streams(buffer: RedisStreamBuffer) -> RunStreams:
    return RunStreams(stream_layer(), buffer, flush_interval=0.0, stall_timeout=120.0)


async def _token(streams: RunStreams, run_id: str, text: str, seq: int) -> None:
    """One token, pushed on its own: wait for its delta before the next one comes."""
    streams.on_outcome(TokenReceived(run_id, "evt_x", text))
    assert await streams.wait_idle(5), f"delta {seq} was not pushed in time"


async def test_text_the_buffer_lost_mid_answer_is_written_back_whole(
    private_redis: RedisServer,
) -> None:
    buffer = _buffer(private_redis)
    run = await sync_to_async(accepted_run)("Flushed mid-answer")
    run_id = str(run.run_id)
    listener = await listen(run.thread_key)
    streams = _streams(buffer)
    await streams.open(run)
    await _token(streams, run_id, "Hello", 1)
    await _token(streams, run_id, " world", 2)
    assert await buffer.snapshot(run_id) == ("Hello world", 2)

    # Every key is gone (this test's own server: Redis restarted empty, or flushed).
    private_redis.flush()
    await _token(streams, run_id, " again", 3)

    # Before, the buffer held (" again", 3): a page that connected now was shown
    # six characters where it had shown eleven.
    assert await buffer.snapshot(run_id) == ("Hello world again", 3)
    await wait_for(lambda: len(listener.events("run.delta", run_id)) == 3, 5, "three deltas")
    deltas = [(d["seq"], d["text"]) for d in listener.events("run.delta", run_id)]
    assert deltas == [(1, "Hello"), (2, " world"), (3, " again")]
    await buffer.clear(run_id)
    await buffer.close()


async def test_an_adopted_run_writes_back_the_text_it_found(private_redis: RedisServer) -> None:
    """A standby that took over continues the numbering and the text it read."""
    buffer = _buffer(private_redis)
    run = await sync_to_async(_streaming_run)()
    run_id = str(run.run_id)
    await buffer.replace(run_id, "Streamed before the takeover.", 4)
    streams = _streams(buffer)
    await streams.open(run)
    private_redis.flush()
    await _token(streams, run_id, " After.", 5)
    assert await buffer.snapshot(run_id) == ("Streamed before the takeover. After.", 5)
    await buffer.clear(run_id)
    await buffer.close()


async def test_a_run_failing_right_after_the_loss_keeps_all_its_text(
    private_redis: RedisServer,
) -> None:
    buffer = _buffer(private_redis)
    run = await sync_to_async(accepted_run)("Failed after the loss")
    run_id = str(run.run_id)
    listener = await listen(run.thread_key)
    streams = _streams(buffer)
    stream = await streams.open(run)
    await _token(streams, run_id, "Hello", 1)
    await _token(streams, run_id, " world", 2)
    private_redis.flush()
    stream.call(functools.partial(stream.failed, "AGENT_ERROR", "boom", retry=False))
    assert await streams.wait_idle(5), "the failure was not handled in time"

    failed = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
    assert (failed.status, failed.partial_text) == ("failed", "Hello world")
    await wait_for(lambda: listener.events("run.status", run_id), 5, "the failed run's status")
    [status] = listener.events("run.status", run_id)
    assert (status["status"], status["text"]) == ("failed", "Hello world")
    await buffer.close()
