"""The demo's in-memory channel layer, called from a thread with its own loop."""

from __future__ import annotations

import asyncio
import threading

from asgiref.sync import async_to_sync
from channels.layers import InMemoryChannelLayer

from relaybridge.demo import bind_layer_to_loop


def test_a_send_from_another_threads_loop_wakes_the_receiver_at_once() -> None:
    layer = InMemoryChannelLayer()

    async def scenario() -> tuple[dict[str, str], float]:
        loop = asyncio.get_running_loop()
        assert bind_layer_to_loop(layer, loop)
        assert not bind_layer_to_loop(layer, loop), "binding twice must not wrap twice"
        receiving = asyncio.create_task(layer.receive("relay.outbound"))
        await asyncio.sleep(0.05)  # the receiver now waits on the queue
        # A timer thread: no running loop, so async_to_sync makes a loop of its own.
        sender = threading.Thread(
            target=async_to_sync(layer.send), args=("relay.outbound", {"run_id": "r1"})
        )
        started = loop.time()
        sender.start()
        # Nothing else runs on this loop: without the binding the receiver would
        # not be woken (the queue is not thread-safe) and this would time out.
        async with asyncio.timeout(2):
            message = await receiving
        sender.join(2)
        return message, loop.time() - started

    message, took = asyncio.run(scenario())
    assert message == {"run_id": "r1"}
    assert took < 1.0


def test_calls_on_the_home_loop_are_direct() -> None:
    layer = InMemoryChannelLayer()

    async def scenario() -> dict[str, str]:
        bind_layer_to_loop(layer, asyncio.get_running_loop())
        await layer.group_add("watchers", "watcher.one")
        await layer.group_send("watchers", {"type": "run.delta", "text": "hi"})
        message: dict[str, str] = await layer.receive("watcher.one")
        return message

    assert asyncio.run(scenario()) == {"type": "run.delta", "text": "hi"}


def test_only_in_memory_layers_are_bound() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert not bind_layer_to_loop(None, loop)
    finally:
        loop.close()
