"""The connection loop on its own: its interface and its teardown, against the emulator."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from relaybridge.buffers import RedisStreamBuffer
from relaybridge.protocol import AgentInfo, Backoff, RelaySession, Submission
from relaybridge.testing import TEST_APP_ID, running_emulator
from relaybridge.worker.connection import RelayConnection
from relaybridge.worker.run_streams import RunStreams
from relaybridge.worker.status import WorkerStatus
from tests.stacks import stream_layer

from .stack import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]


@pytest_asyncio.fixture
async def parts(redis_stack: str) -> AsyncIterator[tuple[Any, RunStreams, WorkerStatus]]:
    buffer = RedisStreamBuffer(aioredis.Redis.from_url(redis_stack), prefix=f"t:{uuid.uuid4()}")
    streams = RunStreams(stream_layer(), buffer, flush_interval=0.0, stall_timeout=120.0)
    status = WorkerStatus(state="starting", identity="test", pid=0, relay_url="")
    async with running_emulator() as relay:
        yield relay, streams, status
    await buffer.close()


def _connection(
    relay: Any, streams: RunStreams, status: WorkerStatus, backoff: Backoff | None = None
) -> RelayConnection:
    async def on_agents(found: tuple[AgentInfo, ...]) -> None:
        status.agents = [agent.agent_id for agent in found]

    return RelayConnection(
        url=relay.url,
        token=relay.app_token,
        auth_style="header",
        session=RelaySession(),
        streams=streams,
        status=status,
        on_agents=on_agents,
        heartbeat_interval=30.0,
        heartbeat_timeout=5.0,
        backoff=backoff,
    )


async def _connected(relay: Any, status: WorkerStatus) -> None:
    async with asyncio.timeout(10):
        await relay.wait_for_app(TEST_APP_ID)
    # The discover the session asked for on connecting was sent and answered.
    await wait_for(lambda: status.agents, what="the agents")


async def test_stop_closes_the_socket_and_returns(
    parts: tuple[Any, RunStreams, WorkerStatus],
) -> None:
    relay, streams, status = parts
    connection = _connection(relay, streams, status)
    stop = asyncio.Event()
    running = asyncio.create_task(connection.run(stop))
    await _connected(relay, status)
    assert connection.connections == 1 and status.state == "connected"
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    apps = relay.router.apps
    async with asyncio.timeout(5):
        await apps.wait_until(lambda: not apps.of(TEST_APP_ID))
    assert connection.connections == 1  # stopped, not reconnected


async def test_stop_lets_the_run_streams_finish_first(
    parts: tuple[Any, RunStreams, WorkerStatus],
) -> None:
    relay, streams, status = parts
    connection = _connection(relay, streams, status)
    stop = asyncio.Event()
    running = asyncio.create_task(connection.run(stop))
    await _connected(relay, status)
    finished = asyncio.Event()

    async def recording_an_end() -> None:
        await asyncio.sleep(0.3)
        finished.set()

    streams.stream("some-run").call(recording_an_end)
    stop.set()
    await asyncio.wait_for(running, timeout=10)
    assert finished.is_set(), "the connection returned before its run streams were done"


async def test_a_dropped_connection_is_torn_down_and_opened_again(
    parts: tuple[Any, RunStreams, WorkerStatus],
) -> None:
    relay, streams, status = parts
    connection = _connection(relay, streams, status)
    stop = asyncio.Event()
    running = asyncio.create_task(connection.run(stop))
    await _connected(relay, status)
    relay.drop_app_connections()
    await wait_for(
        lambda: connection.connections == 2 and status.state == "connected",
        within=15,
        what="the new connection",
    )
    assert status.last_error is None
    stop.set()
    await asyncio.wait_for(running, timeout=10)


async def test_a_connection_torn_down_after_an_answer_came_reconnects_from_the_base_delay(
    parts: tuple[Any, RunStreams, WorkerStatus],
) -> None:
    # Earlier failures have pushed the ceiling to 16 s; every draw takes the ceiling.
    relay, streams, status = parts
    backoff = Backoff(random=lambda: 1.0)
    for _ in range(4):
        backoff.next_delay()
    connection = _connection(relay, streams, status, backoff)
    stop = asyncio.Event()
    running = asyncio.create_task(connection.run(stop))
    try:
        await _connected(relay, status)
        payload = {"event": "comment.mention", "message": "@athena hello"}
        connection.submit(Submission(str(uuid.uuid4()), "athena", "task-1", payload))

        def answered() -> bool:
            return relay.stats.events_accepted == 1 and not relay.open_event_ids

        await wait_for(answered, what="the answer")
        # Killed, as a Relay process is: no close frame.
        assert relay.drop_app_connections() == 1
        await wait_for(lambda: status.state == "backing_off", what="the reconnect wait")
        assert status.next_attempt_at is not None
        assert status.next_attempt_at - time.time() <= 1.0
    finally:
        stop.set()
        await asyncio.wait_for(running, timeout=10)
