"""One run's stream blanks tokens before its text reaches the buffer or a page.

A token may arrive split across deltas: the stream holds back a trailing fragment
that could start one until the next delta shows what it is, and the run's end
(reply or failure) lets the held fragment out, redacted. Real parts throughout:
the test database, the Redis stream buffer and the pages' channel layer.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async

from relaybridge.buffers import RedisStreamBuffer
from relaybridge.models import AgentRun
from relaybridge.protocol import Reply, ReplyReceived, TokenReceived
from relaybridge.worker.run_streams import RunStreams
from tests.stacks import stream_layer

from .stack import GroupListener, accepted_run, listen, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]

APP_TOKEN = "Zq9-app-s3cret.Kv2"
SECRET_PARTS = ("s3cret", "Kv2", "4f9c", "7d1e")


@pytest.fixture(autouse=True)
def app_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_APP_TOKEN", APP_TOKEN)


@pytest_asyncio.fixture
async def buffer(redis_stack: str) -> AsyncIterator[RedisStreamBuffer]:
    store = RedisStreamBuffer(aioredis.Redis.from_url(redis_stack), prefix=f"t:{uuid.uuid4()}")
    yield store
    await store.close()


async def _streaming(
    title: str, buffer: RedisStreamBuffer
) -> tuple[AgentRun, GroupListener, RunStreams]:
    run = await sync_to_async(accepted_run)(title)
    listener = await listen(run.thread_key)
    streams = RunStreams(stream_layer(), buffer, flush_interval=0.0, stall_timeout=120.0)
    await streams.open(run)
    return run, listener, streams


def _clean(text: str) -> bool:
    return not any(part in text for part in SECRET_PARTS)


async def _feed(streams: RunStreams, run_id: str, deltas: list[str]) -> None:
    for delta in deltas:
        streams.on_outcome(TokenReceived(run_id, "evt_x", delta))
        # One delta at a time: each is pushed on its own, as a slow agent's are.
        assert await streams.wait_idle(5.0)


async def test_the_app_token_split_across_deltas_never_reaches_buffer_or_page(
    buffer: RedisStreamBuffer,
) -> None:
    run, listener, streams = await _streaming("Split app token", buffer)
    run_id = str(run.run_id)
    await _feed(streams, run_id, ["The key is Zq9-a", "pp-s3c", "ret.Kv2", " and more"])
    await wait_for(lambda: "more" in listener.streamed_text(run_id), what="the last delta")
    deltas = [d["text"] for d in listener.events("run.delta", run_id)]
    assert all(_clean(text) for text in deltas), deltas
    assert listener.streamed_text(run_id) == "The key is [redacted] and more"
    text, _ = await buffer.snapshot(run_id)
    assert text == "The key is [redacted] and more"
    await buffer.clear(run_id)


async def test_a_glued_relay_token_is_held_until_it_ends_then_blanked(
    buffer: RedisStreamBuffer,
) -> None:
    run, listener, streams = await _streaming("Glued token", buffer)
    run_id = str(run.run_id)
    await _feed(streams, run_id, ["use foo_rl", "a_athena_4f9c", "2b7d1e"])
    await wait_for(lambda: listener.events("run.delta", run_id), what="the first delta")
    # The token may still go on: nothing of it is shown yet, not even "rl".
    assert listener.streamed_text(run_id) == "use foo_"
    assert await buffer.snapshot(run_id) == ("use foo_", 1)
    await _feed(streams, run_id, [" now"])
    await wait_for(lambda: len(listener.events("run.delta", run_id)) == 2, what="the token")
    assert listener.streamed_text(run_id) == "use foo_[redacted] now"
    await buffer.clear(run_id)


async def test_the_reply_lets_the_held_fragment_out_redacted(buffer: RedisStreamBuffer) -> None:
    run, listener, streams = await _streaming("Held at the reply", buffer)
    run_id = str(run.run_id)
    await _feed(streams, run_id, ["token: rla_athena_4f9c"])
    reply = Reply(
        event_id="evt_x",
        agent_id=run.agent_id,
        thread_id=run.thread_id,
        reply="token: rla_athena_4f9c",
    )
    streams.on_outcome(ReplyReceived(run_id, "evt_x", reply))
    await wait_for(lambda: listener.events("run.reply", run_id), what="the reply")
    assert listener.streamed_text(run_id) == "token: [redacted]"
    [saved] = listener.events("run.reply", run_id)
    assert _clean(str(saved)) and "rla_" not in str(saved)


async def test_a_failed_run_keeps_its_held_fragment_redacted(buffer: RedisStreamBuffer) -> None:
    run, listener, streams = await _streaming("Held at the failure", buffer)
    run_id = str(run.run_id)
    await _feed(streams, run_id, ["so far Zq9-app-s3", "cret.Kv"])
    await wait_for(lambda: listener.streamed_text(run_id) == "so far ", what="the first delta")
    assert await buffer.snapshot(run_id) == ("so far ", 1)
    await streams.fail(run_id, "AGENT_ERROR", "it broke", retry=False)
    saved = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
    assert saved.status == AgentRun.Status.FAILED
    assert saved.partial_text == "so far [redacted]"
    await wait_for(lambda: listener.events("run.status", run_id), what="the failure")
    assert listener.streamed_text(run_id) == "so far [redacted]"
    statuses = listener.events("run.status", run_id)
    assert statuses and all(_clean(str(status)) for status in statuses)


async def test_a_first_delta_held_whole_waits_for_the_next(buffer: RedisStreamBuffer) -> None:
    run, listener, streams = await _streaming("Held first", buffer)
    run_id = str(run.run_id)
    await _feed(streams, run_id, ["r"])
    assert await buffer.snapshot(run_id) == ("", 0)
    await _feed(streams, run_id, ["ight"])
    await wait_for(lambda: listener.events("run.delta", run_id), what="the first delta")
    assert listener.streamed_text(run_id) == "right"
    await buffer.clear(run_id)
