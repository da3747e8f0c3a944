"""Group names, browser message shapes and the text-so-far buffer."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
import redis.asyncio as aioredis
from django.utils import timezone

from project.tasks.models import Comment
from relaybridge import services, streams
from relaybridge.buffers import (
    MemoryStreamBuffer,
    RedisStreamBuffer,
    StreamGap,
    get_stream_buffer,
)
from relaybridge.models import AgentRun

VALID_GROUP = re.compile(r"^[A-Za-z0-9_.\-]{1,99}$")


@pytest.mark.parametrize(
    "key",
    [
        "tasks.task.42",
        "x" * 200,
        "weird key/with:chars é",
        "",
        "tasks.task.0b8e1f6a-5d0b-4a3e-9e1c-2f4b7c3d9a10",
    ],
)
def test_group_names_are_valid(key: str) -> None:
    name = streams.group_name_for_thread(key)
    assert VALID_GROUP.match(name)
    assert name.startswith("relaybridge.thread.")


def test_group_names_are_readable_and_distinct() -> None:
    assert streams.group_name_for_thread("tasks.task.42") == "relaybridge.thread.tasks.task.42"
    assert streams.group_name_for_thread("a/b") != streams.group_name_for_thread("a_b")
    assert streams.group_name_for_thread("x" * 200) != streams.group_name_for_thread("x" * 201)


def test_message_shapes() -> None:
    run_id = str(uuid.uuid4())
    assert streams.delta_event(run_id, 3, " the") == {
        "type": "run.delta",
        "run": run_id,
        "seq": 3,
        "text": " the",
    }
    assert streams.reply_event(run_id, 7, "<p>hi</p>", "athena") == {
        "type": "run.reply",
        "run": run_id,
        "comment_id": "7",
        "html": "<p>hi</p>",
        "agent_id": "athena",
        "fragment": "",
        "status_text": "",
    }
    error = streams.error_event(run_id, "AGENT_OFFLINE", "Athena is offline", 4.0)
    assert error["retry_in"] == 4.0 and error["type"] == "run.error"
    assert streams.group_message(error) == {"type": "relaybridge.run.error", "event": error}
    assert streams.dispatch_message(run_id) == {"type": "relaybridge.dispatch", "run_id": run_id}
    assert set(streams.LAYER_TYPES.values()) == {
        "relaybridge.snapshot",
        "relaybridge.run.status",
        "relaybridge.run.delta",
        "relaybridge.run.reply",
        "relaybridge.run.error",
    }


@pytest.mark.django_db
def test_run_state_and_snapshot(make_comment: Callable[..., Comment]) -> None:
    comment = make_comment("@athena hi")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.record_error(run.run_id, "AGENT_OFFLINE", "Agent not connected", 4, schedule=False)
    run.refresh_from_db()
    state = streams.run_state(run, "so far", 2)
    assert state["run"] == str(run.run_id)
    assert state["agent_name"] == "Athena"
    assert state["comment_id"] == str(comment.pk)
    assert state["status"] == "retrying"
    retry_in = state["retry_in"]
    assert retry_in is not None and 0 < retry_in <= 4
    assert (state["text"], state["seq"], state["code"]) == ("so far", 2, "AGENT_OFFLINE")
    # The page's words come from the server: the status line, its countdown form,
    # the line once text arrives, and the run's markup (relaybridge/run.html).
    assert re.fullmatch(r"Agent not connected — retrying in [34] s", state["status_text"])
    assert state["status_template"] == "Agent not connected — {countdown}"
    assert state["writing_text"] == "Athena is writing…"
    assert f'data-relaybridge-run="{run.run_id}"' in state["html"]
    assert 'data-status="retrying"' in state["html"] and "csrfmiddlewaretoken" not in state["html"]
    event = streams.status_event(run)
    assert event["type"] == "run.status" and event["retry_in"] is not None
    assert streams.snapshot_event([state]) == {"type": "snapshot", "runs": [state]}

    AgentRun.objects.filter(pk=run.pk).update(next_attempt_at=timezone.now() - timedelta(1))
    services.record_error(run.run_id, "AGENT_OFFLINE", "gone", None, partial_text="Hal")
    run.refresh_from_db()
    state = streams.run_state(run)
    assert (state["status"], state["retry_in"], state["text"]) == ("failed", None, "Hal")


def test_split_text_cuts_long_texts_into_pieces_that_fit_a_frame() -> None:
    assert streams.split_text("") == [""]
    assert streams.split_text("abc", 3) == ["abc"]
    assert streams.split_text("abcdefg", 3) == ["abc", "def", "g"]
    long = "\U0001f600" * (streams.PAGE_TEXT_CHARS * 2 + 5)
    pieces = streams.split_text(long)
    assert [len(piece) for piece in pieces] == [streams.PAGE_TEXT_CHARS] * 2 + [5]
    assert "".join(pieces) == long


def test_page_messages_move_long_texts_to_parts(make_comment: Callable[..., Comment]) -> None:
    comment = make_comment("@athena hi")
    run = AgentRun.objects.get(comment=comment)
    size = streams.PAGE_TEXT_CHARS
    short = streams.run_state(run, "short", 1)
    assert streams.page_messages(streams.snapshot_event([short])) == [
        streams.snapshot_event([short])
    ]
    status = streams.status_event(run, "z" * (size + 1), 9)
    first, *parts = streams.page_messages(status)
    assert first["type"] == "run.status"
    assert (first["text"], first["parts"]) == ("", 2)
    assert status["text"] == "z" * (size + 1), "the event itself was changed"
    assert parts == [
        {"type": "run.text", "run": str(run.run_id), "seq": 9, "part": 1, "text": "z" * size},
        {"type": "run.text", "run": str(run.run_id), "seq": 9, "part": 2, "text": "z"},
    ]
    # A snapshot's texts share one message's room: those that do not fit go in parts.
    half = streams.run_state(run, "h" * (size // 2 + 1), 3)
    snapshot, *parts = streams.page_messages(streams.snapshot_event([half, half, short]))
    assert snapshot["type"] == "snapshot"
    assert [(state["text"][:1], state["parts"]) for state in snapshot["runs"]] == [
        ("h", 0),
        ("", 1),
        ("s", 0),
    ]
    assert parts == [
        {"type": "run.text", "run": str(run.run_id), "seq": 3, "part": 1, "text": half["text"]}
    ]
    delta = streams.delta_event(str(run.run_id), 1, "d" * (size * 3))
    assert streams.page_messages(delta) == [delta]  # the relay worker splits deltas


async def exercise_buffer(buffer: Any) -> None:
    run_id = str(uuid.uuid4())
    assert await buffer.snapshot(run_id) == ("", 0)
    assert await buffer.append(run_id, 1, "Hello")
    assert await buffer.append(run_id, 2, ", wor")
    assert not await buffer.append(run_id, 2, ", wor")  # a repeat is a no-op
    assert not await buffer.append(run_id, 1, "stale")
    assert await buffer.append(run_id, 3, "ld ☃")
    assert await buffer.snapshot(run_id) == ("Hello, world ☃", 3)
    # Delta 4 never arrived: 5 would pass the text without it for the whole text.
    with pytest.raises(StreamGap, match="delta 5 does not follow the stored delta 3"):
        await buffer.append(run_id, 5, "!")
    assert await buffer.snapshot(run_id) == ("Hello, world ☃", 3)
    await buffer.clear(run_id)
    with pytest.raises(StreamGap):  # the keys are gone: not even a first delta 2
        await buffer.append(run_id, 2, "tail")
    assert await buffer.snapshot(run_id) == ("", 0)
    await buffer.replace(run_id, "Hello, world! (final)", 4)
    assert await buffer.snapshot(run_id) == ("Hello, world! (final)", 4)
    await buffer.clear(run_id)
    assert await buffer.snapshot(run_id) == ("", 0)


async def test_memory_buffer() -> None:
    await exercise_buffer(MemoryStreamBuffer(ttl=60))


async def test_memory_buffer_expires() -> None:
    buffer = MemoryStreamBuffer(ttl=0)
    await buffer.append("r", 1, "x")
    assert await buffer.snapshot("r") == ("", 0)


def test_factory_picks_memory_without_redis(settings: Any) -> None:
    settings.RELAYBRIDGE_REDIS_URL = None
    assert get_stream_buffer() is get_stream_buffer()
    assert isinstance(get_stream_buffer(), MemoryStreamBuffer)


@pytest.fixture
async def redis_buffer(redis_url: str) -> AsyncIterator[RedisStreamBuffer]:
    buffer = RedisStreamBuffer(
        aioredis.Redis.from_url(redis_url), ttl=60, prefix=f"rbtest:{uuid.uuid4().hex}"
    )
    yield buffer
    await buffer.close()


@pytest.mark.redis
async def test_redis_buffer(redis_buffer: RedisStreamBuffer) -> None:
    await exercise_buffer(redis_buffer)


@pytest.mark.redis
async def test_redis_buffer_sets_a_ttl(redis_buffer: RedisStreamBuffer) -> None:
    await redis_buffer.append("r1", 1, "text")
    text_key, seq_key = redis_buffer._keys("r1")
    assert 0 < await redis_buffer.client.ttl(text_key) <= 60
    assert 0 < await redis_buffer.client.ttl(seq_key) <= 60


@pytest.mark.redis
async def test_redis_buffer_concurrent_appends_keep_text_and_seq_together(
    redis_buffer: RedisStreamBuffer,
) -> None:
    # Two writers racing over the same sequence numbers: each seq is applied once.
    other = RedisStreamBuffer(redis_buffer.client, ttl=60, prefix=redis_buffer.prefix)

    async def write(buffer: RedisStreamBuffer) -> int:
        return sum([await buffer.append("r2", n, f"<{n}>") for n in range(1, 201)])

    applied = await asyncio.gather(write(redis_buffer), write(other))
    text, seq = await redis_buffer.snapshot("r2")
    assert seq == 200
    assert sum(applied) == 200
    assert text == "".join(f"<{n}>" for n in range(1, 201))


@pytest.mark.redis
async def test_redis_buffer_appends_of_many_runs_share_round_trips(
    redis_buffer: RedisStreamBuffer,
) -> None:
    trips: list[int] = []

    class Counted(RedisStreamBuffer):
        async def _append_all(self, appends: list[tuple[list[str], list[Any]]]) -> list[Any]:
            trips.append(len(appends))
            return await super()._append_all(appends)

    redis_buffer = Counted(redis_buffer.client, ttl=60, prefix=redis_buffer.prefix)
    runs = [f"run-{n}" for n in range(60)]
    await redis_buffer.append("gap", 1, "a")
    # Every run's first delta at once, a repeat, and one that skips a delta.
    results = await asyncio.gather(
        *(redis_buffer.append(run, 1, f"<{run}>") for run in runs),
        redis_buffer.append("gap", 1, "a"),
        redis_buffer.append("gap", 3, "c"),
        return_exceptions=True,
    )
    assert results[:60] == [True] * 60
    assert results[60] is False
    assert isinstance(results[61], StreamGap) and results[61].last == 1
    assert max(trips) > 1 and sum(trips) == 63
    assert [await redis_buffer.snapshot(run) for run in runs[::20]] == [
        (f"<{run}>", 1) for run in runs[::20]
    ]
    assert await redis_buffer.snapshot("gap") == ("a", 1)


@pytest.mark.redis
async def test_factory_picks_redis(settings: Any, redis_url: str) -> None:
    settings.RELAYBRIDGE_REDIS_URL = redis_url
    buffer = get_stream_buffer()
    assert isinstance(buffer, RedisStreamBuffer)
    await buffer.close()


def test_a_run_asked_again_after_a_lost_connection_says_so(
    make_comment: Callable[..., Comment],
) -> None:
    comment = make_comment("@athena hi")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    message = "Connection to Relay was lost — asking Athena again"
    services.record_error(run.run_id, "RELAYBRIDGE_CONNECTION_LOST", message, 0, schedule=False)
    run.refresh_from_db()
    state = streams.run_state(run, "half an answ", 3)
    assert state["status"] == "retrying" and state["attempt"] == 1
    assert state["status_text"] == message
    assert state["status_template"] == message  # no countdown: it is asked at once
    assert 'data-status="retrying"' in state["html"]
    assert services.claim_for_sending(run.run_id) is not None
    run.refresh_from_db()
    assert streams.run_state(run)["attempt"] == 2
    assert [entry["reason"] for entry in run.attempt_log] == [
        "mention",
        "RELAYBRIDGE_CONNECTION_LOST",
    ]
