"""Per-run chains: a run's pushes happen one after another, different runs' at once.

A run's deltas are numbered when they leave the coalescer, by whichever task takes
them (the run's lane, the flusher), and a status push must land between the deltas
its text was read after and before. Chaining each push behind the run's previous
one, at the moment it is numbered (no ``await`` in between), keeps the buffer and
the pages in ``seq`` order without making any run wait for another.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable

Action = Callable[[], Awaitable[object]]


class RunChains:
    def __init__(self) -> None:
        self._last: dict[str, asyncio.Task[None]] = {}

    def then(self, run_id: str, action: Action) -> asyncio.Task[None]:
        """Run ``action`` once everything chained for ``run_id`` so far is done."""
        task = asyncio.ensure_future(self._after(self._last.get(run_id), action))
        self._last[run_id] = task
        task.add_done_callback(functools.partial(self._done, run_id))
        return task

    async def _after(self, previous: asyncio.Task[None] | None, action: Action) -> None:
        if previous is not None:
            # ``wait``, not ``await``: a failed push must not fail the next one.
            await asyncio.wait([previous])
        await action()

    def _done(self, run_id: str, task: asyncio.Task[None]) -> None:
        if self._last.get(run_id) is task:
            del self._last[run_id]

    def __len__(self) -> int:
        return len(self._last)
