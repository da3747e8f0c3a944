"""One run's stream, directly: order, flush deadlines, its end and teardown.

Real parts throughout: the test database, the Redis stream buffer and the pages'
channel layer, with a listener on the run's thread group.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from asgiref.sync import sync_to_async

from relaybridge.buffers import RedisStreamBuffer
from relaybridge.models import AgentRun
from relaybridge.protocol import (
    Reply,
    ReplyMetadata,
    ReplyReceived,
    SubmissionAccepted,
    TokenReceived,
)
from relaybridge.worker.run_streams import RunStreams
from tests.stacks import stream_layer

from .stack import GroupListener, accepted_run, listen, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]


@pytest_asyncio.fixture
async def buffer(redis_stack: str) -> AsyncIterator[RedisStreamBuffer]:
    store = RedisStreamBuffer(aioredis.Redis.from_url(redis_stack), prefix=f"t:{uuid.uuid4()}")
    yield store
    await store.close()


async def _run_and_listener(title: str) -> tuple[AgentRun, GroupListener]:
    run = await sync_to_async(accepted_run)(title)
    return run, await listen(run.thread_key)


def _reply(run: AgentRun, text: str) -> Reply:
    return Reply(
        event_id="evt_x",
        agent_id=run.agent_id,
        thread_id=run.thread_id,
        reply=text,
        metadata=ReplyMetadata(tokens_used=12, model="test-model", latency_ms=5),
    )


async def test_tokens_reach_buffer_and_page_in_order(buffer: RedisStreamBuffer) -> None:
    run, listener = await _run_and_listener("In order")
    run_id = str(run.run_id)
    streams = RunStreams(stream_layer(), buffer, flush_interval=0.0, stall_timeout=120.0)
    await streams.open(run)
    words = [f"w{i} " for i in range(60)]
    for word in words:  # faster than the stream can push: it joins what waits
        streams.on_outcome(TokenReceived(run_id, "evt_x", word))
    await wait_for(lambda: listener.streamed_text(run_id) == "".join(words), what="the text")
    deltas = listener.events("run.delta", run_id)
    assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1))
    assert await buffer.snapshot(run_id) == ("".join(words), len(deltas))
    await buffer.clear(run_id)


async def test_later_tokens_wait_for_the_flush_deadline(buffer: RedisStreamBuffer) -> None:
    run, listener = await _run_and_listener("Deadline")
    run_id = str(run.run_id)
    streams = RunStreams(stream_layer(), buffer, flush_interval=0.4, stall_timeout=120.0)
    stream = await streams.open(run)
    started = time.monotonic()
    stream.add_token("first")  # at once: time to first token is what a person notices
    await wait_for(lambda: listener.events("run.delta", run_id), what="the first delta")
    assert time.monotonic() - started < 0.4
    stream.add_token(" second")
    stream.add_token(" third")
    assert stream.busy  # its task waits for the deadline
    await wait_for(lambda: len(listener.events("run.delta", run_id)) == 2, what="the flush")
    flushed_after = time.monotonic() - started
    first, second = listener.events("run.delta", run_id)
    assert (first["text"], second["text"]) == ("first", " second third")
    assert flushed_after >= 0.35, f"pushed {flushed_after:.2f} s after the first token"
    assert await streams.wait_idle(5.0) and not stream.busy
    await buffer.clear(run_id)


async def test_the_reply_pushes_pending_text_first_then_the_stream_ends(
    buffer: RedisStreamBuffer,
) -> None:
    run, listener = await _run_and_listener("Ends")
    run_id = str(run.run_id)
    streams = RunStreams(stream_layer(), buffer, flush_interval=5.0, stall_timeout=120.0)
    await streams.open(run)
    streams.on_outcome(TokenReceived(run_id, "evt_x", "Hello"))
    await wait_for(lambda: listener.events("run.delta", run_id), what="the first delta")
    streams.on_outcome(TokenReceived(run_id, "evt_x", " world"))  # waits for a 5 s deadline
    streams.on_outcome(ReplyReceived(run_id, "evt_x", _reply(run, "Hello world")))
    await wait_for(lambda: listener.events("run.reply", run_id), what="the reply")
    kinds = [m["event"]["type"] for m in listener.messages if m["event"].get("run") == run_id]
    assert kinds == ["run.delta", "run.delta", "run.reply"]
    assert listener.streamed_text(run_id) == "Hello world"
    assert await streams.wait_idle(5.0)
    # Torn down: nothing remembered, the buffer cleared, the thread free for the next run.
    assert run_id not in streams and len(streams) == 0
    assert await buffer.snapshot(run_id) == ("", 0)
    await asyncio.wait_for(streams.settled((run.agent_id, run.thread_id)), 1.0)
    saved = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
    assert saved.status == AgentRun.Status.REPLIED and saved.first_token_at is not None


async def _feed_tokens(
    streams: RunStreams, run_id: str, every: float, until: asyncio.Event, count: int
) -> int:
    """Another run's tokens, ``every`` seconds, until ``until`` is set or ``count`` are sent."""
    sent = 0
    while sent < count and not until.is_set():
        streams.on_outcome(TokenReceived(run_id, "evt_x", f"t{sent} "))
        sent += 1
        await asyncio.sleep(every)
    return sent


async def _ending_beside_other(
    buffer: RedisStreamBuffer, title: str, *, lull: float, max_wait: float
) -> tuple[AgentRun, GroupListener, AgentRun, GroupListener, RunStreams]:
    """A run about to end, another streaming beside it, and streams that save replies
    after a ``lull`` in the tokens, or ``max_wait``."""
    ending, ending_pages = await _run_and_listener(title)
    other, other_pages = await _run_and_listener("Streams on")
    streams = RunStreams(
        stream_layer(),
        buffer,
        flush_interval=0.0,
        stall_timeout=120.0,
        end_write_lull=lull,
        end_write_max_wait=max_wait,
    )
    await streams.open(ending)
    await streams.open(other)
    return ending, ending_pages, other, other_pages, streams


async def test_a_reply_is_saved_once_the_other_runs_tokens_pause(
    buffer: RedisStreamBuffer,
) -> None:
    ending, ending_pages, other, other_pages, streams = await _ending_beside_other(
        buffer, "Ends while another streams", lull=0.5, max_wait=30.0
    )
    ending_id, other_id = str(ending.run_id), str(other.run_id)
    streams.on_outcome(TokenReceived(ending_id, "evt_x", "Done."))
    streams.on_outcome(ReplyReceived(ending_id, "evt_x", _reply(ending, "Done.")))
    # The ending run's text is pushed at once; its reply waits for the other run's
    # tokens (20 ms apart, well inside the 0.5 s pause) to stop: past the quarter
    # second its first-token write waits, after which it would otherwise be saved.
    saved_early = asyncio.Event()
    feeding = asyncio.create_task(_feed_tokens(streams, other_id, 0.02, saved_early, 50))
    await wait_for(lambda: ending_pages.events("run.delta", ending_id), what="the ending text")
    while not feeding.done():
        if ending_pages.events("run.reply", ending_id):
            saved_early.set()
        await asyncio.sleep(0.005)
    assert await feeding == 50, "the reply was saved while the other run streamed"
    await wait_for(lambda: ending_pages.events("run.reply", ending_id), what="the reply")
    await wait_for(lambda: len(other_pages.events("run.delta", other_id)) > 0, what="other text")
    assert await streams.wait_idle(5.0)
    saved = await sync_to_async(AgentRun.objects.get)(pk=ending.pk)
    assert saved.status == AgentRun.Status.REPLIED
    await buffer.clear(other_id)


async def test_a_reply_waits_for_a_pause_only_so_long(buffer: RedisStreamBuffer) -> None:
    ending, ending_pages, other, _other_pages, streams = await _ending_beside_other(
        buffer, "Ends beside a long answer", lull=0.5, max_wait=0.3
    )
    ending_id, other_id = str(ending.run_id), str(other.run_id)
    streams.on_outcome(ReplyReceived(ending_id, "evt_x", _reply(ending, "Done.")))
    reply_seen = asyncio.Event()
    # 30 s of tokens that never pause long enough: the reply goes in after its
    # 0.3 s, while they still come (the feeding stops once the reply is seen).
    feeding = asyncio.create_task(_feed_tokens(streams, other_id, 0.02, reply_seen, 1500))
    await wait_for(lambda: ending_pages.events("run.reply", ending_id), within=20.0, what="reply")
    reply_seen.set()
    assert await feeding < 1500
    assert await streams.wait_idle(5.0)
    await buffer.clear(other_id)


async def test_a_short_answer_does_not_wait_out_the_first_token_writes_gathering(
    buffer: RedisStreamBuffer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from relaybridge.worker import database

    monkeypatch.setattr(database, "WRITES_GATHER_S", 60.0)
    run, listener = await _run_and_listener("Short answer")
    run_id = str(run.run_id)
    streams = RunStreams(stream_layer(), buffer, flush_interval=0.0, stall_timeout=120.0)
    await streams.open(run)
    streams.on_outcome(TokenReceived(run_id, "evt_x", "Yes."))
    streams.on_outcome(ReplyReceived(run_id, "evt_x", _reply(run, "Yes.")))
    # Its end writes the first token at once (a minute's gathering otherwise).
    await wait_for(lambda: listener.events("run.reply", run_id), what="the reply")
    saved = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
    assert saved.status == AgentRun.Status.REPLIED
    assert saved.first_token_at is not None and saved.first_token_ms is not None
    assert await streams.wait_idle(5.0)


async def test_accepted_status_comes_before_the_first_delta(buffer: RedisStreamBuffer) -> None:
    from relaybridge import services

    run, listener = await _run_and_listener("Accepted first")
    run_id = str(run.run_id)
    # Back to sending, so that the stream records the acceptance itself.
    await sync_to_async(
        lambda: AgentRun.objects.filter(pk=run.pk).update(
            status=AgentRun.Status.SENDING, event_id=None
        )
    )()
    reloaded = await sync_to_async(services.get_run)(run_id)
    assert reloaded is not None
    run = reloaded
    streams = RunStreams(stream_layer(), buffer, flush_interval=0.0, stall_timeout=120.0)
    await streams.open(run)
    streams.on_outcome(SubmissionAccepted(run_id, "evt_first"))
    streams.on_outcome(TokenReceived(run_id, "evt_first", "hi"))
    await wait_for(lambda: listener.events("run.delta", run_id), what="the delta")
    kinds = [m["event"]["type"] for m in listener.messages if m["event"].get("run") == run_id]
    assert kinds == ["run.status", "run.delta"]
    await buffer.clear(run_id)


async def test_teardown_waits_for_a_busy_stream_and_says_when_it_cannot(
    buffer: RedisStreamBuffer,
) -> None:
    streams = RunStreams(stream_layer(), buffer, flush_interval=0.0, stall_timeout=120.0)
    release = asyncio.Event()
    handled: list[str] = []

    async def slow() -> None:
        await release.wait()
        handled.append("slow")

    async def after() -> None:
        handled.append("after")

    stream = streams.stream("not-a-run")
    stream.call(slow)
    stream.call(after)
    assert not await streams.wait_idle(0.2)  # still at work: teardown would warn
    release.set()
    assert await streams.wait_idle(5.0)
    assert handled == ["slow", "after"]
    assert "not-a-run" not in streams  # nothing known about it: not kept


async def test_a_failing_job_does_not_stop_the_next(buffer: RedisStreamBuffer, caplog: Any) -> None:
    streams = RunStreams(stream_layer(), buffer, flush_interval=0.0, stall_timeout=120.0)
    handled: list[str] = []

    async def broken() -> None:
        raise RuntimeError("database went away")

    async def next_one() -> None:
        handled.append("next")

    stream = streams.stream("not-a-run")
    stream.call(broken)
    stream.call(next_one)
    assert await streams.wait_idle(5.0)
    assert handled == ["next"]
    assert "database went away" in caplog.text
