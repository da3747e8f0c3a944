"""Per-run lanes: what Relay said about each run is handled in order, off the read loop.

The read loop only parses frames and advances the session machine; the database
and channel-layer work a frame causes (record ``accepted``, save a reply, push a
delta) goes to the run's *lane*, a queue worked by its own task. Within one run
everything happens in the order Relay sent it (``accepted``, tokens, the terminal
frame), so exactly-once replies and Stop work as before; across runs nothing waits
for anything: one run's database call no longer delays every other run's tokens.

A lane that falls behind joins the tokens waiting in it into one update. That is
no deliberate delay (with coalescing off an idle lane still pushes every token on
its own); it only keeps a busy worker from answering a burst with a burst.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

logger = logging.getLogger("relaybridge.worker")

Job = Callable[[], Awaitable[object]]
TokenSink = Callable[[str, str], Awaitable[object]]


class RunLanes:
    def __init__(self, on_tokens: TokenSink) -> None:
        self._on_tokens = on_tokens
        self._queues: dict[str, deque[Job | str]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._queues)

    def token(self, key: str, text: str) -> None:
        """Queue a streamed token of run ``key``."""
        self._queue(key).append(text)

    def call(self, key: str, job: Job) -> None:
        """Queue ``job`` (a coroutine function) behind everything already in ``key``'s lane."""
        self._queue(key).append(job)

    def _queue(self, key: str) -> deque[Job | str]:
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            task = asyncio.create_task(self._work(key, queue), name=f"relay-lane-{key}")
            self._workers[key] = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return queue

    async def _work(self, key: str, queue: deque[Job | str]) -> None:
        try:
            while queue:
                item = queue.popleft()
                try:
                    if isinstance(item, str):
                        texts = [item]
                        while queue and isinstance(queue[0], str):
                            following = queue.popleft()
                            if isinstance(following, str):
                                texts.append(following)
                        await self._on_tokens(key, "".join(texts))
                    else:
                        await item()
                except Exception:
                    # Logged, not raised: one run's trouble must not stop the others.
                    # A run left without its update is ended by the watchdog.
                    logger.exception("relay worker: handling a frame of %s failed", key)
        finally:
            # No await between the last check of ``queue`` and here: a frame queued
            # meanwhile would have kept the loop going.
            if self._queues.get(key) is queue:
                del self._queues[key]
                del self._workers[key]

    async def done(self, key: str) -> None:
        """Wait until everything queued so far in ``key``'s lane has been handled."""
        worker = self._workers.get(key)
        if worker is not None:
            await asyncio.wait([worker])

    async def wait_idle(self, seconds: float) -> bool:
        """Wait until every lane is empty (or ``seconds`` pass); True if they are."""
        try:
            async with asyncio.timeout(seconds):
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
        except TimeoutError:
            return False
        return True
