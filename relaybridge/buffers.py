"""The text-so-far of each streaming run, so a page that (re)connects mid-stream can
be given a snapshot and then continue by sequence number, losing and doubling nothing.

The relay worker appends each coalesced delta with its sequence number; the
consumer reads ``(text, last_seq)`` and then forwards only deltas with a higher
``seq``. An append carries its ``seq`` and is applied only if it follows the stored one,
atomically, so a repeated append is a no-op and text and sequence never disagree.
An append that does not follow (Redis lost the run's keys: restarted empty, flushed,
or evicted them; an earlier append failed) raises :class:`StreamGap` and changes
nothing: applied, it would make the text after the loss pass for the whole text so
far, and a page that (re)connects would show less than it had. The writer then puts
the whole text back with ``replace``.

:class:`RedisStreamBuffer` is shared by every process (production);
:class:`MemoryStreamBuffer` serves the embedded default, where the worker and the
pages live in one process. Entries expire after ``RELAYBRIDGE_BUFFER_TTL`` seconds.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Final, Protocol

import redis.asyncio as aioredis

from .batching import RoundTrips
from .conf import relay_settings

# KEYS: text, seq. ARGV: seq, text, ttl. Returns 1 when applied, 0 for an old seq,
# -1 when deltas before seq are missing.
_APPEND: Final = """
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local seq = tonumber(ARGV[1])
if seq <= last then
    return 0
end
if seq > last + 1 then
    return -1
end
redis.call('APPEND', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[3])
return 1
"""


class StreamGap(Exception):
    """The buffer lacks deltas before the one appended; the text is left as it was."""

    def __init__(self, run_id: str, seq: int, last: int) -> None:
        super().__init__(f"run {run_id}: delta {seq} does not follow the stored delta {last}")
        self.run_id, self.seq, self.last = run_id, seq, last


class StreamBuffer(Protocol):
    async def append(self, run_id: str, seq: int, text: str) -> bool:
        """Append ``text`` as delta ``seq``; False (and nothing changes) if seq is not new.

        Raises :class:`StreamGap` (and nothing changes) if deltas before ``seq`` are missing.
        """
        ...

    async def snapshot(self, run_id: str) -> tuple[str, int]:
        """The text so far and the last applied seq (``("", 0)`` when nothing is stored)."""
        ...

    async def replace(self, run_id: str, text: str, seq: int) -> None:
        """Set the whole text and seq (the authoritative reply, a resumed stream)."""
        ...

    async def clear(self, run_id: str) -> None: ...

    async def close(self) -> None: ...


def _decode(value: Any) -> str:
    if value is None:
        return ""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class RedisStreamBuffer:
    """The buffer in Redis: two keys per run, updated together by a Lua script."""

    def __init__(
        self, client: aioredis.Redis, ttl: int | None = None, prefix: str = "relaybridge:stream"
    ) -> None:
        self.client = client
        self.ttl = ttl if ttl is not None else relay_settings.BUFFER_TTL
        self.prefix = prefix
        self._append = client.register_script(_APPEND)
        # Appends of many runs streaming at once share round trips (one pipeline).
        self._appends: RoundTrips[tuple[list[str], list[Any]], Any] = RoundTrips(self._append_all)

    @classmethod
    def from_url(cls, url: str, ttl: int | None = None) -> RedisStreamBuffer:
        return cls(aioredis.Redis.from_url(url), ttl)

    def _keys(self, run_id: str) -> list[str]:
        # The hash tag keeps both keys in one slot, as a Redis Cluster script needs.
        base = f"{self.prefix}:{{{run_id}}}"
        return [f"{base}:text", f"{base}:seq"]

    async def append(self, run_id: str, seq: int, text: str) -> bool:
        applied = await self._appends((self._keys(run_id), [seq, text, self.ttl]))
        if applied == -1:
            raise StreamGap(run_id, seq, (await self.snapshot(run_id))[1])
        return bool(applied)

    async def _append_all(self, appends: list[tuple[list[str], list[Any]]]) -> list[Any]:
        if len(appends) == 1:
            keys, args = appends[0]
            return [await self._append(keys=keys, args=args)]
        async with self.client.pipeline(transaction=False) as pipe:
            for keys, args in appends:
                await self._append(keys=keys, args=args, client=pipe)
            results: list[Any] = await pipe.execute(raise_on_error=False)
        return results

    async def snapshot(self, run_id: str) -> tuple[str, int]:
        text, seq = await self.client.mget(self._keys(run_id))
        return _decode(text), int(_decode(seq) or 0)

    async def replace(self, run_id: str, text: str, seq: int) -> None:
        text_key, seq_key = self._keys(run_id)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(text_key, text, ex=self.ttl)
            pipe.set(seq_key, seq, ex=self.ttl)
            await pipe.execute()

    async def clear(self, run_id: str) -> None:
        await self.client.delete(*self._keys(run_id))

    async def close(self) -> None:
        await self.client.aclose()


class MemoryStreamBuffer:
    """The buffer in this process's memory (the embedded default: one process)."""

    def __init__(self, ttl: int | None = None) -> None:
        self.ttl = ttl if ttl is not None else relay_settings.BUFFER_TTL
        self._entries: dict[str, tuple[str, int, float]] = {}
        # Pages and the worker may run on different threads' event loops.
        self._lock = threading.Lock()

    def _live(self, run_id: str) -> tuple[str, int] | None:
        entry = self._entries.get(run_id)
        if entry is None:
            return None
        if entry[2] <= time.monotonic():
            del self._entries[run_id]
            return None
        return entry[0], entry[1]

    async def append(self, run_id: str, seq: int, text: str) -> bool:
        with self._lock:
            current, last = self._live(run_id) or ("", 0)
            if seq <= last:
                return False
            if seq > last + 1:
                raise StreamGap(run_id, seq, last)
            self._entries[run_id] = (current + text, seq, time.monotonic() + self.ttl)
            return True

    async def snapshot(self, run_id: str) -> tuple[str, int]:
        with self._lock:
            return self._live(run_id) or ("", 0)

    async def replace(self, run_id: str, text: str, seq: int) -> None:
        with self._lock:
            self._entries[run_id] = (text, seq, time.monotonic() + self.ttl)

    async def clear(self, run_id: str) -> None:
        with self._lock:
            self._entries.pop(run_id, None)

    async def close(self) -> None:
        return None


_memory_buffer = MemoryStreamBuffer()


def get_stream_buffer() -> StreamBuffer:
    """The buffer for this deployment: Redis when ``RELAYBRIDGE_REDIS_URL`` is set.

    A Redis buffer owns a client bound to the calling event loop: create one per
    loop (worker, consumer) and ``close()`` it when done. Without Redis every caller
    gets the one process-wide memory buffer.
    """
    url = relay_settings.REDIS_URL
    if url:
        return RedisStreamBuffer.from_url(url)
    return _memory_buffer
