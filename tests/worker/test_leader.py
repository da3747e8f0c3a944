"""The leadership lock against a real Redis: one holder, expiry, no stealing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from relaybridge.worker.leader import LocalLeaderLock, RedisLeaderLock


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    redis_client = aioredis.Redis.from_url(redis_url)
    yield redis_client
    await redis_client.aclose()


@pytest.fixture
def lock_key() -> str:
    return f"relaybridge:test-leader:{uuid.uuid4().hex}"


async def test_only_one_worker_holds_the_lock(client: aioredis.Redis, lock_key: str) -> None:
    first = RedisLeaderLock(client, key=lock_key, ttl=5)
    second = RedisLeaderLock(client, key=lock_key, ttl=5)
    assert await first.acquire()
    assert not await second.acquire()
    assert await first.holder() == first.identity
    assert await first.renew()
    assert not await second.renew()
    await first.release()


async def test_the_standby_takes_over_when_the_holder_stops_renewing(
    client: aioredis.Redis, lock_key: str
) -> None:
    dead = RedisLeaderLock(client, key=lock_key, ttl=0.2)
    standby = RedisLeaderLock(client, key=lock_key, ttl=0.2)
    assert await dead.acquire()
    assert not await standby.acquire()
    # The holder "dies": it never renews. Its key expires within the TTL.
    for _ in range(50):
        if await standby.acquire():
            break
        await asyncio.sleep(0.02)
    assert await standby.holder() == standby.identity
    # The old holder, coming back, can neither renew nor release the new one's lock.
    assert not await dead.renew()
    await dead.release()
    assert await standby.holder() == standby.identity
    await standby.release()
    assert await standby.holder() is None


async def test_release_frees_the_lock_at_once(client: aioredis.Redis, lock_key: str) -> None:
    first = RedisLeaderLock(client, key=lock_key, ttl=30)
    second = RedisLeaderLock(client, key=lock_key, ttl=30)
    assert await first.acquire()
    await first.release()
    assert await second.acquire()
    await second.release()


async def test_the_local_lock_always_leads() -> None:
    lock = LocalLeaderLock()
    assert await lock.holder() is None
    assert await lock.acquire()
    assert await lock.renew()
    await lock.release()
    assert not await lock.renew()
