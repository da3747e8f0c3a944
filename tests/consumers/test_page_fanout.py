"""One membership per thread and process: each push is received once and handed to
every page of the thread there (:mod:`relaybridge.page_fanout`), on the layers a
deployment uses: Redis Pub/Sub (the example project's stream layer), the list-based
Redis layer and the in-memory one."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.layers import BaseChannelLayer, InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.contrib.auth import get_user_model

from project.tasks.models import Task
from relaybridge import page_fanout, streams
from relaybridge.consumers import MAX_QUEUED_PUSHES, ThreadStreamConsumer
from relaybridge.models import AgentRun
from tests.stacks import stream_layer

from .conftest import cookie_for, create_run, socket, watching

DEADLINE = 5.0


class RecordingPage:
    """A page that keeps what it is handed."""

    def __init__(self) -> None:
        self.pushes: list[page_fanout.Push] = []
        self.arrived = asyncio.Event()

    async def take(self, push: page_fanout.Push) -> None:
        self.pushes.append(push)
        self.arrived.set()

    async def wait_for(self, count: int) -> list[dict[str, Any]]:
        async with asyncio.timeout(DEADLINE):
            while len(self.pushes) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return [push.message for push in self.pushes]


class BrokenPage(RecordingPage):
    async def take(self, push: page_fanout.Push) -> None:
        await super().take(push)
        raise RuntimeError("this page's socket broke")


def layers(redis_url: str) -> dict[str, Callable[[], BaseChannelLayer]]:
    config = {
        "hosts": [{"address": redis_url, "socket_timeout": 30}],
        "prefix": f"relaybridge-test-{uuid.uuid4().hex}",
    }
    return {
        "pubsub": lambda: RedisPubSubChannelLayer(**config),
        "redis": lambda: RedisChannelLayer(**config),
        "memory": InMemoryChannelLayer,
    }


@pytest.fixture(params=["pubsub", "redis", "memory"])
def make_layer(request: Any, redis_url: str) -> Callable[[], BaseChannelLayer]:
    return layers(redis_url)[request.param]


async def ended(task: asyncio.Task[None] | None) -> None:
    """Wait for the listening a last page's leave ended (its group left on the layer)."""
    assert task is not None
    async with asyncio.timeout(DEADLINE):
        await asyncio.wait([task])


def message(n: int) -> dict[str, Any]:
    return {"type": "relaybridge.run.error", "event": {"type": "run.error", "n": n}}


async def close(layer: BaseChannelLayer) -> None:
    closing = getattr(layer, "close_pools", None) or getattr(layer, "flush", None)
    if isinstance(layer, RedisPubSubChannelLayer):
        await layer.flush()
    elif closing is not None and not isinstance(layer, InMemoryChannelLayer):
        await closing()


def test_every_page_gets_each_push_once_in_order_from_one_membership(
    make_layer: Callable[[], BaseChannelLayer],
) -> None:
    async def scenario() -> None:
        layer = make_layer()
        joined = page_fanout.listeners(layer)
        pages = [RecordingPage() for _ in range(5)]
        for page in pages:
            await joined.join("relaybridge.thread.t1", page)
        for n in range(3):
            await layer.group_send("relaybridge.thread.t1", message(n))
        received = [await page.wait_for(3) for page in pages]
        assert received == [[message(0), message(1), message(2)]] * 5
        # One receive per push: every page is handed the same object, its JSON
        # encoded once.
        for n in range(3):
            assert len({id(page.pushes[n]) for page in pages}) == 1
        assert pages[0].pushes[2].text == '{"type": "run.error", "n": 2}'
        assert page_fanout.listeners(layer) is joined
        await ended([joined.leave("relaybridge.thread.t1", page) for page in pages][-1])
        await close(layer)

    async_to_sync(scenario)()


def test_a_page_that_raises_does_not_keep_the_push_from_the_others(
    make_layer: Callable[[], BaseChannelLayer], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        layer = make_layer()
        joined = page_fanout.listeners(layer)
        first, broken, last = RecordingPage(), BrokenPage(), RecordingPage()
        for page in (first, broken, last):
            await joined.join("relaybridge.thread.t2", page)
        await layer.group_send("relaybridge.thread.t2", message(1))
        await layer.group_send("relaybridge.thread.t2", message(2))
        assert await last.wait_for(2) == [message(1), message(2)]
        assert await first.wait_for(2) == [message(1), message(2)]
        assert await broken.wait_for(2) == [message(1), message(2)]
        await ended(
            [joined.leave("relaybridge.thread.t2", page) for page in (first, broken, last)][-1]
        )
        await close(layer)

    with caplog.at_level(logging.ERROR, logger="relaybridge"):
        async_to_sync(scenario)()
    failures = [r for r in caplog.records if "could not take a pushed message" in r.getMessage()]
    assert len(failures) == 2
    assert all("this page's socket broke" in str(r.exc_info[1]) for r in failures if r.exc_info)


def test_pages_joining_together_all_wait_for_the_membership_and_share_it(
    make_layer: Callable[[], BaseChannelLayer],
) -> None:
    async def scenario() -> None:
        layer = make_layer()
        joined = page_fanout.listeners(layer)
        pages = [RecordingPage() for _ in range(4)]
        await asyncio.gather(*(joined.join("relaybridge.thread.t3", page) for page in pages))
        # Whatever is pushed once every join has returned reaches every page.
        await layer.group_send("relaybridge.thread.t3", message(7))
        assert [await page.wait_for(1) for page in pages] == [[message(7)]] * 4
        assert list(joined.pages("relaybridge.thread.t3")) == pages
        await ended([joined.leave("relaybridge.thread.t3", page) for page in pages][-1])
        await close(layer)

    async_to_sync(scenario)()


def test_the_last_page_to_leave_ends_the_membership_and_a_new_page_starts_anew(
    redis_url: str,
) -> None:
    async def scenario() -> None:
        layer = layers(redis_url)["pubsub"]()
        joined = page_fanout.listeners(layer)
        first, second = RecordingPage(), RecordingPage()
        await joined.join("relaybridge.thread.t4", first)
        await joined.join("relaybridge.thread.t4", second)
        # The Pub/Sub layer's members of the group on this loop.
        loop_layer = layer._get_layer()
        members = loop_layer.groups[loop_layer._get_group_channel_name("relaybridge.thread.t4")]
        [channel] = members
        assert joined.leave("relaybridge.thread.t4", first) is None
        assert members == {channel}  # second still watches
        ending = joined.leave("relaybridge.thread.t4", second)
        assert ending is not None
        assert list(joined.pages("relaybridge.thread.t4")) == []
        async with asyncio.timeout(DEADLINE):
            await asyncio.wait([ending])
        assert members == set()  # the process left the group on the layer
        third = RecordingPage()
        await joined.join("relaybridge.thread.t4", third)
        await layer.group_send("relaybridge.thread.t4", message(9))
        assert await third.wait_for(1) == [message(9)]
        # Nothing pushed after they left reached the pages that left.
        assert first.pushes == [] and second.pushes == []
        await ended(joined.leave("relaybridge.thread.t4", third))
        await close(layer)

    async_to_sync(scenario)()


class RefusingLayer(InMemoryChannelLayer):  # type: ignore[misc]
    """An in-memory layer whose first group_add fails, as Redis down would."""

    refusals = 1

    async def group_add(self, group: str, channel: str) -> None:
        if self.refusals:
            self.refusals -= 1
            raise ConnectionError("the layer is down")
        await super().group_add(group, channel)


def test_a_failed_membership_fails_the_joins_waiting_and_a_later_join_tries_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        layer = RefusingLayer()
        joined = page_fanout.listeners(layer)
        early, also_early = RecordingPage(), RecordingPage()
        results = await asyncio.gather(
            joined.join("relaybridge.thread.t5", early),
            joined.join("relaybridge.thread.t5", also_early),
            return_exceptions=True,
        )
        assert [type(result) for result in results] == [ConnectionError, ConnectionError]
        assert list(joined.pages("relaybridge.thread.t5")) == []
        later = RecordingPage()
        await joined.join("relaybridge.thread.t5", later)
        await layer.group_send("relaybridge.thread.t5", message(3))
        assert await later.wait_for(1) == [message(3)]
        assert early.pushes == [] and also_early.pushes == []
        await ended(joined.leave("relaybridge.thread.t5", later))

    with caplog.at_level(logging.ERROR, logger="relaybridge"):
        async_to_sync(scenario)()
    assert any(
        "could not listen to relaybridge.thread.t5" in r.getMessage() for r in caplog.records
    )


class AddsThenFailsLayer(InMemoryChannelLayer):  # type: ignore[misc]
    """Counts the channel a member, then fails to subscribe, as the Pub/Sub layer
    does when Redis drops the connection mid-join."""

    failures = 1

    async def group_add(self, group: str, channel: str) -> None:
        await super().group_add(group, channel)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("could not subscribe")


def test_a_membership_half_made_is_undone_so_it_gathers_no_pushes() -> None:
    async def scenario() -> None:
        layer = AddsThenFailsLayer()
        joined = page_fanout.listeners(layer)
        with pytest.raises(ConnectionError):
            await joined.join("relaybridge.thread.t8", RecordingPage())
        assert layer.groups.get("relaybridge.thread.t8", {}) == {}
        page = RecordingPage()
        await joined.join("relaybridge.thread.t8", page)
        assert len(layer.groups["relaybridge.thread.t8"]) == 1
        await layer.group_send("relaybridge.thread.t8", message(8))
        assert await page.wait_for(1) == [message(8)]
        await ended(joined.leave("relaybridge.thread.t8", page))
        assert layer.groups.get("relaybridge.thread.t8", {}) == {}

    async_to_sync(scenario)()


def test_a_membership_outlives_the_layers_group_expiry() -> None:
    # A layer forgets a group's members after group_expiry (a day by default); a
    # thread with a page always open here must not stop hearing its pushes.
    async def scenario() -> None:
        layer = InMemoryChannelLayer(group_expiry=1)
        assert page_fanout.renew_interval(layer) == 0.25
        joined = page_fanout.listeners(layer)
        page = RecordingPage()
        await joined.join("relaybridge.thread.t6", page)
        # Past the expiry, several times over: the membership was renewed meanwhile.
        await asyncio.sleep(2.5)
        await layer.group_send("relaybridge.thread.t6", message(4))
        assert await page.wait_for(1) == [message(4)]
        await ended(joined.leave("relaybridge.thread.t6", page))

    async_to_sync(scenario)()


class FailingOnceLayer(InMemoryChannelLayer):  # type: ignore[misc]
    """An in-memory layer whose first receive fails, as a dropped Redis connection does."""

    failures = 1

    async def receive(self, channel: str) -> dict[str, Any]:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the connection to the layer dropped")
        message: dict[str, Any] = await super().receive(channel)
        return message


def test_a_failed_receive_is_logged_and_the_pages_keep_listening(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(page_fanout, "RETRY_SECONDS", 0.01)

    async def scenario() -> None:
        layer = FailingOnceLayer()
        joined = page_fanout.listeners(layer)
        page = RecordingPage()
        await joined.join("relaybridge.thread.t7", page)
        await layer.group_send("relaybridge.thread.t7", message(5))
        assert await page.wait_for(1) == [message(5)]
        assert layer.failures == 0
        await ended(joined.leave("relaybridge.thread.t7", page))

    with caplog.at_level(logging.ERROR, logger="relaybridge"):
        async_to_sync(scenario)()
    assert any(
        "could not receive relaybridge.thread.t7's pushes" in r.getMessage() for r in caplog.records
    )


# -- the consumer's side: what it sends at once, and what waits in its own queue ----------


def page_of(task: Task, user: Any) -> tuple[ThreadStreamConsumer, list[dict[str, Any]]]:
    """A consumer watching ``task`` that records what it sends, whether as JSON or as
    text encoded once for every page (no socket)."""
    consumer, sent = watching(task, user)
    consumer.queued, consumer.queue_task = None, None

    async def send(text_data: str | None = None, **kwargs: Any) -> None:
        sent.append(json.loads(text_data or "null"))

    consumer.send = send
    return consumer, sent


def push_of(event: streams.BrowserMessage) -> page_fanout.Push:
    """``event`` as the listener hands it to the pages."""
    return page_fanout.Push(dict(streams.group_message(event)))


def streaming_run(title: str) -> tuple[Any, Task, AgentRun]:
    """A viewer, and a task of that title with a streaming run."""
    viewer = get_user_model().objects.create_user("viewer")
    task = Task.objects.create(title=title)
    return viewer, task, create_run(task, AgentRun.Status.STREAMING)


@pytest.mark.django_db(transaction=True)
def test_a_page_that_must_ask_the_database_first_holds_up_no_other_page(
    embedded: None,
) -> None:
    viewer, task, run = streaming_run("Streaming")
    run_id = str(run.run_id)
    deltas = [streams.delta_event(run_id, seq, f"t{seq} ") for seq in (6, 7)]
    pushes = [push_of(delta) for delta in deltas]

    async def scenario() -> None:
        knows, knows_sent = page_of(task, viewer)
        knows.runs[run_id] = 5  # from its snapshot
        new, new_sent = page_of(task, viewer)  # has not seen the run: asks first
        for push in pushes:
            await knows.take(push)
            await new.take(push)
        # Sent at once by the page that knew the run; the other's wait in order.
        assert knows_sent == deltas
        assert new_sent == []
        assert new.queued is not None and [p.message["event"] for p in new.queued] == deltas
        assert new.queue_task is not None
        async with asyncio.timeout(DEADLINE):
            await new.queue_task
        assert new_sent == deltas
        assert new.queued is None and new.runs[run_id] == 7
        # A delta already sent, and one of a run the page saw end, are dropped.
        await knows.take(pushes[0])
        knows.runs[run_id] = None
        await knows.take(push_of(streams.delta_event(run_id, 8, "x")))
        assert knows_sent == deltas

    async_to_sync(scenario)()


# -- real sockets through the ASGI application ---------------------------------------


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_the_sockets_of_a_thread_share_one_membership_and_leave_it_however_they_end(
    redis_stack: str,
    task: Task,
    make_user: Callable[..., Any],
    make_run: Callable[..., AgentRun],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = await sync_to_async(make_run)(AgentRun.Status.STREAMING)
    group = streams.group_name_for_thread(run.thread_key)
    cookie = await cookie_for(make_user)
    pages = [socket(task.pk, cookie) for _ in range(3)]
    for page in pages:
        assert (await page.connect())[0]
        assert (await page.receive_json_from(timeout=DEADLINE))["type"] == "snapshot"
    joined = page_fanout.listeners(stream_layer())
    assert len(list(joined.pages(group))) == 3
    loop_layer = stream_layer()._get_layer()
    assert len(loop_layer.groups[loop_layer._get_group_channel_name(group)]) == 1

    ended = streams.error_event(str(run.run_id), "AGENT_ERROR", "It broke.", None)
    await stream_layer().group_send(group, streams.group_message(ended))
    for page in pages:
        assert await page.receive_json_from(timeout=DEADLINE) == ended

    # A socket that closes, and one whose connect fails after it joined (the
    # database is down when it reads the runs), are handed nothing more.
    await pages[0].disconnect()

    def database_down(thread_key: str) -> list[AgentRun]:
        raise RuntimeError("the database is down")

    monkeypatch.setattr("relaybridge.consumers._active_runs", database_down)
    failing = socket(task.pk, cookie)
    assert (await failing.connect(timeout=DEADLINE))[0]  # accepted, then the snapshot fails
    with pytest.raises(RuntimeError, match="the database is down"):
        await failing.wait(DEADLINE)
    assert len(list(joined.pages(group))) == 2
    for page in pages[1:]:
        await page.disconnect()
    assert list(joined.pages(group)) == []


@pytest.mark.django_db(transaction=True)
def test_a_page_stuck_behind_a_long_queue_keeps_each_runs_last_delta_and_loses_no_text(
    embedded: None,
) -> None:
    viewer, task, run = streaming_run("A fast answer")
    run_id = str(run.run_id)
    tokens = MAX_QUEUED_PUSHES + 500
    whole = "".join(f"t{seq} " for seq in range(1, tokens + 1))
    status = streams.status_event(run)
    pushes = [push_of(status)] + [
        push_of(streams.delta_event(run_id, seq, f"t{seq} ")) for seq in range(1, tokens + 1)
    ]

    async def scenario() -> None:
        await streams.get_stream_buffer().replace(run_id, whole, tokens)
        page, sent = page_of(task, viewer)
        page.queued = deque()  # as while its snapshot is read
        for push in pushes:
            await page.take(push)
        assert page.queued is not None and len(page.queued) <= MAX_QUEUED_PUSHES
        kinds = [push.message["type"] for push in page.queued]
        assert kinds[0] == "relaybridge.run.status"  # what is not a delta is kept
        assert page.queued[-1] is pushes[-1]  # and the run's last delta
        page.runs[run_id] = 0  # the snapshot had the run with no text yet
        page._work_through_queue()
        assert page.queue_task is not None
        async with asyncio.timeout(DEADLINE):
            await page.queue_task
        # The page's text ends whole: the deltas it sent and the text it was sent in
        # place of the one that did not follow.
        text, seq = "", 0
        for message in sent:
            if message["type"] == "run.delta" and message["seq"] == seq + 1:
                text, seq = text + message["text"], message["seq"]
            elif message["type"] == "run.status" and message.get("seq", 0) >= seq:
                text, seq = message.get("text", text), message.get("seq", seq)
        assert (text, seq) == (whole, tokens)
        assert page.runs[run_id] == tokens

    async_to_sync(scenario)()
