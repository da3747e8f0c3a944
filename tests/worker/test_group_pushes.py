"""The worker's pushes on the Pub/Sub layer go out in pipelines, and arrive as group_send's."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from channels.layers import InMemoryChannelLayer
from channels_redis.pubsub import RedisPubSubChannelLayer

from relaybridge import streams
from relaybridge.worker.group_pushes import GroupPushes

pytestmark = pytest.mark.redis


def pubsub_layer(redis_url: str, prefix: str) -> RedisPubSubChannelLayer:
    return RedisPubSubChannelLayer(hosts=[redis_url], prefix=prefix)


async def test_pushes_of_many_groups_arrive_in_order_on_a_page_layer(redis_url: str) -> None:
    prefix = f"rbtest-{uuid.uuid4().hex}"
    worker_layer, page_layer = pubsub_layer(redis_url, prefix), pubsub_layer(redis_url, prefix)
    groups = [f"thread-{n}" for n in range(20)]
    channels = {}
    for group in groups:
        channels[group] = await page_layer.new_channel()
        await page_layer.group_add(group, channels[group])
    pushes = GroupPushes(worker_layer)
    try:

        async def stream(group: str) -> None:
            for seq in range(1, 11):
                event = streams.delta_event(group, seq, f"<{seq}>")
                await pushes.group_send(group, streams.group_message(event))

        await asyncio.gather(*(stream(group) for group in groups))
        assert pushes.pipelined
        for group in groups:
            received = [await page_layer.receive(channels[group]) for _ in range(10)]
            assert [m["type"] for m in received] == ["relaybridge.run.delta"] * 10
            assert [m["event"]["seq"] for m in received] == list(range(1, 11))
            assert {m["event"]["run"] for m in received} == {group}
    finally:
        for group in groups:
            await page_layer.group_discard(group, channels[group])
        await page_layer.flush()
        await worker_layer.flush()


async def test_a_push_that_cannot_be_serialized_fails_alone(redis_url: str) -> None:
    prefix = f"rbtest-{uuid.uuid4().hex}"
    worker_layer, page_layer = pubsub_layer(redis_url, prefix), pubsub_layer(redis_url, prefix)
    channel = await page_layer.new_channel()
    await page_layer.group_add("thread", channel)
    pushes = GroupPushes(worker_layer)
    good = streams.group_message(streams.delta_event("run", 1, "fine"))
    bad = {**good, "event": {"text": object()}}
    try:
        results = await asyncio.gather(
            pushes.group_send("thread", bad),  # type: ignore[arg-type]
            pushes.group_send("thread", good),
            return_exceptions=True,
        )
        assert isinstance(results[0], TypeError) and results[1] is None
        assert (await page_layer.receive(channel))["event"]["text"] == "fine"
    finally:
        await page_layer.group_discard("thread", channel)
        await page_layer.flush()
        await worker_layer.flush()


async def test_other_layers_get_plain_group_sends() -> None:
    layer = InMemoryChannelLayer()
    channel = await layer.new_channel()
    await layer.group_add("thread", channel)
    pushes = GroupPushes(layer)
    await pushes.group_send("thread", streams.group_message(streams.delta_event("run", 1, "hi")))
    assert not pushes.pipelined
    assert (await layer.receive(channel))["event"]["text"] == "hi"
