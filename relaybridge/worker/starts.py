"""First tokens are written to the database in batches, beside the stream.

A run's first token moves it from ``accepted`` to ``streaming`` and records our time
to first token. No page waits for that write: the text goes out at once, and a page
turns a thinking run into a writing one on its first delta. Where a hundred answers
begin in the same instant, a hundred separate writes would hold the worker's
interpreter long enough to delay every stream by a tenth of a second, so the first
tokens that arrive while one write is under way are written together by the next
(two queries, however many runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from django.utils import timezone

from .. import services
from ..services.runs import RunRef
from .run_info import RunInfo
from .waiting import in_thread

logger = logging.getLogger("relaybridge.worker")

#: Called for a run whose first token found it no longer ``accepted`` (stopped, or
#: already streaming under an earlier worker): it decides whether the run goes on.
NotMoved = Callable[[RunInfo], Awaitable[None]]


class FirstTokenWrites:
    def __init__(self, not_moved: NotMoved) -> None:
        self._not_moved = not_moved
        self._pending: dict[str, tuple[RunInfo, datetime]] = {}
        self._written: dict[str, asyncio.Event] = {}
        self._writer: asyncio.Task[None] | None = None

    def add(self, info: RunInfo) -> None:
        """Record ``info``'s first token (now) with the next write."""
        self._pending[info.run_id] = (info, timezone.now())
        self._written.setdefault(info.run_id, asyncio.Event())
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all(), name="relay-first-tokens")

    async def written(self, run_id: str) -> None:
        """Wait until the run's first token is in the database (at once if it is)."""
        event = self._written.get(run_id)
        if event is not None:
            await event.wait()

    async def _write_all(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, {}
            arrivals: dict[RunRef, datetime] = {run_id: at for run_id, (_i, at) in batch.items()}
            try:
                moved = await in_thread(services.record_first_tokens)(arrivals)
                for run_id, (info, _at) in batch.items():
                    if run_id not in moved:
                        await self._not_moved(info)
            except Exception:
                # The periodic progress write records the run later; the watchdog,
                # which would otherwise fail it, reads that.
                logger.exception("could not record the first token of %d run(s)", len(batch))
            finally:
                for run_id in batch:
                    event = self._written.pop(run_id, None)
                    if event is not None:
                        event.set()

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.wait([self._writer])
