"""Leadership: at most one relay worker holds the Relay connection at a time.

Two ``relay_worker`` processes may run for availability. They compete for one Redis
key with a TTL; the holder renews it well within the TTL, and when the holder dies
(even ``kill -9``) the key expires and the standby takes over. The key's value is a
random identity, so a worker that stalled past its TTL can never renew or release a
lock that another worker now holds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
import time
from typing import Protocol

import redis.asyncio as aioredis

from ..conf import loggable

DEFAULT_LOCK_KEY = "relaybridge:relay-worker:leader"

logger = logging.getLogger("relaybridge.worker")

# Compare-and-set scripts: only the identity that holds the key may touch it.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""


class Leadership(Protocol):
    """What the worker needs from a lock."""

    ttl: float

    async def acquire(self) -> bool: ...
    async def renew(self) -> bool: ...
    async def release(self) -> None: ...
    async def holder(self) -> str | None: ...


def make_identity() -> str:
    """A lock value that tells an operator which process holds the connection."""
    return f"{socket.gethostname()}:{secrets.token_hex(6)}"


class RedisLeaderLock:
    """A TTL lock in Redis (``SET NX PX`` to take it, compare-and-set to keep it)."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        key: str = DEFAULT_LOCK_KEY,
        ttl: float = 10.0,
        identity: str | None = None,
    ) -> None:
        self._client = client
        self.key = key
        self.ttl = ttl
        self.identity = identity or make_identity()

    @property
    def _ttl_ms(self) -> int:
        return max(1, int(self.ttl * 1000))

    async def acquire(self) -> bool:
        taken = await self._client.set(self.key, self.identity, nx=True, px=self._ttl_ms)
        if taken:
            return True
        # A worker restarted with the same identity (it cannot happen with random
        # identities, but be exact): holding it already counts as acquired.
        return await self.renew()

    async def renew(self) -> bool:
        result = await self._client.eval(_RENEW, 1, self.key, self.identity, self._ttl_ms)
        return bool(result)

    async def release(self) -> None:
        await self._client.eval(_RELEASE, 1, self.key, self.identity)

    async def holder(self) -> str | None:
        value = await self._client.get(self.key)
        if value is None:
            return None
        return value.decode() if isinstance(value, bytes) else str(value)


class LocalLeaderLock:
    """The embedded default has one process and no Redis: it always leads."""

    def __init__(self, ttl: float = 10.0) -> None:
        self.ttl = ttl
        self.identity = make_identity()
        self._held = False

    async def acquire(self) -> bool:
        self._held = True
        return True

    async def renew(self) -> bool:
        return self._held

    async def release(self) -> None:
        self._held = False

    async def holder(self) -> str | None:
        return self.identity if self._held else None


async def try_acquire(lock: Leadership) -> bool:
    """Take the lock if free; an unreachable Redis means "not now", never a crash."""
    try:
        return await lock.acquire()
    except Exception as exc:
        logger.warning("cannot reach the leadership lock (%s); trying again", loggable(exc))
        return False


async def keep_lock(lock: Leadership) -> None:
    """Renew ``lock`` until it is lost; returns to give up the connection.

    While Redis cannot be reached nobody else can take the lock either, so the
    connection is kept as long as the lock cannot have expired before the next
    attempt (one TTL after the last renewal). A lock that vanished (Redis
    restarted empty) is taken again at once if still free, so a Redis restart
    does not cost the Relay connection.
    """
    renewed_at = time.monotonic()
    while True:
        await asyncio.sleep(lock.ttl / 3)
        try:
            held = await lock.renew() or await lock.acquire()
        except Exception as exc:
            if time.monotonic() + lock.ttl / 3 - renewed_at < lock.ttl:
                logger.warning("could not renew the leadership lock (%s)", loggable(exc))
                continue
            logger.error("the leadership lock was unreachable for a whole TTL; giving up")
            return
        if not held:
            logger.error("lost the leadership lock; giving up the Relay connection")
            return
        renewed_at = time.monotonic()
