"""Hand-offs from sync code share one Redis connection per process (relaybridge.sync_sends)."""

from __future__ import annotations

import multiprocessing
import sys
import types
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer

from relaybridge import sync_sends
from relaybridge.conf import relay_settings
from relaybridge.tasks import hand_to_worker
from tests.deployment.waiting import wait_until
from tests.redis_server import RedisServer

from .conftest import drain

pytestmark = pytest.mark.redis


def redis_layer_settings(url: str) -> dict[str, Any]:
    return {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": f"rbtest-{uuid.uuid4().hex[:12]}"},
        }
    }


@pytest.fixture
def on_private_redis(settings: Any, private_redis: RedisServer) -> Iterator[RedisServer]:
    """The default layer on a Redis of this test's own, whose connections it can count."""
    settings.CHANNEL_LAYERS = redis_layer_settings(private_redis.url)
    yield private_redis


def connections_received(server: RedisServer) -> int:
    with server.client(socket_timeout=5) as client:
        return int(client.info("stats")["total_connections_received"])


def clients_connected(server: RedisServer) -> int:
    with server.client(socket_timeout=5) as client:
        return int(client.info("clients")["connected_clients"])


def run_ids(count: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(count)]


def received_run_ids() -> list[str]:
    return [message["run_id"] for message in drain(relay_settings.OUTBOUND_CHANNEL)]


def test_a_process_hands_runs_over_on_one_connection(on_private_redis: RedisServer) -> None:
    """``async_to_sync`` opened (and closed) a Redis connection for every hand-off."""
    first, *rest = run_ids(20)
    assert hand_to_worker(first)
    before = connections_received(on_private_redis)
    assert all(hand_to_worker(run_id) for run_id in rest)
    # Only the counting clients themselves connected meanwhile.
    assert connections_received(on_private_redis) - before == 1
    assert received_run_ids() == [first, *rest]


def _hand_over_in_child(run_id: str, done: Any) -> None:
    done.put(hand_to_worker(run_id))


def test_a_forked_child_hands_runs_over_on_a_loop_of_its_own(
    on_private_redis: RedisServer,
) -> None:
    """Celery's prefork pool forks after the parent may have sent: the loop's thread
    stays behind, and the child must not wait on it."""
    parent, child = run_ids(2)
    assert hand_to_worker(parent)
    context = multiprocessing.get_context("fork")
    done = context.Queue()
    process = context.Process(target=_hand_over_in_child, args=(child, done))
    process.start()
    try:
        assert done.get(timeout=30) is True
    finally:
        process.join(timeout=30)
    assert process.exitcode == 0
    assert received_run_ids() == [parent, child]


def test_hand_offs_go_on_after_redis_restarts(on_private_redis: RedisServer) -> None:
    """The kept connection dies with the server; the next hand-off opens another."""
    before, after = run_ids(2)
    assert hand_to_worker(before)
    on_private_redis.restart()  # the message waiting went with it (no persistence)
    assert hand_to_worker(after)
    assert received_run_ids() == [after]


def test_new_layer_settings_get_a_new_copy_and_the_old_one_is_closed(
    settings: Any, private_redis: RedisServer, tmp_path: Any
) -> None:
    with RedisServer(tmp_path / "second.log") as second:
        settings.CHANNEL_LAYERS = redis_layer_settings(private_redis.url)
        first = run_ids(1)[0]
        assert hand_to_worker(first)
        assert received_run_ids() == [first]
        wait_until(lambda: clients_connected(private_redis) == 2, 10, "the kept connection")
        settings.CHANNEL_LAYERS = redis_layer_settings(second.url)
        moved = run_ids(1)[0]
        assert hand_to_worker(moved)
        assert received_run_ids() == [moved]
        # The copy of the first layer closed its connection (the counting client is
        # the one left); the copy of the second keeps its own.
        wait_until(lambda: clients_connected(private_redis) == 1, 10, "the old copy closed")
        wait_until(lambda: clients_connected(second) == 2, 10, "the new copy's connection")


def test_layers_that_are_not_redis_keep_async_to_sync() -> None:
    """An in-memory layer is its process's loop's: a copy would be another, empty layer."""
    layer = get_channel_layer()
    assert isinstance(layer, InMemoryChannelLayer)
    assert not sync_sends.keeps_connections(layer)
    run_id = run_ids(1)[0]
    assert hand_to_worker(run_id)
    assert received_run_ids() == [run_id]


def test_green_threads_keep_async_to_sync(
    on_private_redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under gevent a thread of ours would be a greenlet. gevent is not installed here:
    its ``monkey`` module is stood in for by one that says threading was patched."""
    layer = get_channel_layer()
    assert layer is not None and sync_sends.keeps_connections(layer)
    monkey = types.SimpleNamespace(is_module_patched=lambda name: name == "threading")
    monkeypatch.setitem(sys.modules, "gevent.monkey", monkey)
    assert sync_sends.green_threads()
    assert not sync_sends.keeps_connections(layer)
    run_id = run_ids(1)[0]
    assert hand_to_worker(run_id)
    assert received_run_ids() == [run_id]


def test_a_missing_layer_is_said_plainly(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}
    with pytest.raises(sync_sends.LayerMissing, match="'default'"):
        sync_sends.send_from_sync("default", "relaybridge.outbound", {"type": "x"})
