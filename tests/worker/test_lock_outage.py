"""The relay worker when the leadership lock's Redis cannot be reached for a while.

A Redis restart used to end the worker: ``acquire`` raised out of the main loop
(the process exited), and a failed renewal silently dropped the Relay connection.
"""

from __future__ import annotations

import asyncio

import pytest

from relaybridge.testing import TEST_APP_TOKEN, running_emulator
from relaybridge.worker.bridge import BridgeWorker, WorkerOptions
from relaybridge.worker.leader import LocalLeaderLock

from .stack import wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]


class UnreachableLock(LocalLeaderLock):
    """A lock whose Redis refuses connections while ``down`` is set."""

    def __init__(self, ttl: float) -> None:
        super().__init__(ttl)
        self.down = False
        self.failures = 0

    def _check(self) -> None:
        if self.down:
            self.failures += 1
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")

    async def acquire(self) -> bool:
        self._check()
        return await super().acquire()

    async def renew(self) -> bool:
        self._check()
        return await super().renew()


async def test_an_unreachable_lock_at_start_is_waited_out_not_fatal() -> None:
    lock = UnreachableLock(ttl=0.3)
    lock.down = True
    async with running_emulator() as relay:
        worker = BridgeWorker(WorkerOptions(url=relay.url, token=TEST_APP_TOKEN), lock=lock)
        running = asyncio.create_task(worker.run())
        await wait_for(lambda: lock.failures >= 2, what="failed attempts to take the lock")
        assert not running.done(), "the worker exited while Redis was unreachable"
        lock.down = False
        await wait_for(lambda: worker.status.state == "connected", what="the connection")
        worker.request_stop()
        await asyncio.wait_for(running, timeout=10)


async def test_a_short_lock_outage_keeps_the_relay_connection() -> None:
    lock = UnreachableLock(ttl=1.2)
    async with running_emulator() as relay:
        worker = BridgeWorker(WorkerOptions(url=relay.url, token=TEST_APP_TOKEN), lock=lock)
        running = asyncio.create_task(worker.run())
        await wait_for(lambda: worker.status.state == "connected", what="the connection")
        connection = worker.connection
        assert connection is not None and connection.connections == 1
        lock.down = True  # shorter than the TTL: one failed renewal (every 0.4 s)
        await wait_for(lambda: lock.failures >= 1, what="a failed renewal")
        lock.down = False
        # Several renewals later, the same connection: none given up, none reopened.
        with pytest.raises(AssertionError, match="timed out"):
            await wait_for(
                lambda: worker.connection is not connection or connection.connections > 1,
                within=1.5,
                what="the connection given up",
            )
        worker.request_stop()
        await asyncio.wait_for(running, timeout=10)


async def test_a_lock_unreachable_for_a_whole_ttl_gives_up_the_connection() -> None:
    lock = UnreachableLock(ttl=0.3)
    async with running_emulator() as relay:
        worker = BridgeWorker(WorkerOptions(url=relay.url, token=TEST_APP_TOKEN), lock=lock)
        running = asyncio.create_task(worker.run())
        await wait_for(lambda: worker.status.state == "connected", what="the connection")
        first = worker.connection
        lock.down = True
        await wait_for(lambda: worker.connection is not first, what="the connection given up")
        lock.down = False
        await wait_for(
            lambda: worker.connection is not None and worker.status.state == "connected",
            what="the lock taken again and a new connection",
        )
        worker.request_stop()
        await asyncio.wait_for(running, timeout=10)
