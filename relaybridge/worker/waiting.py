"""Awaiting without losing a cancellation.

Two library behaviours would otherwise let a cancelled worker loop keep running,
so that shutdown and reconnects hang:

* Python 3.11's ``asyncio.wait_for`` can swallow a ``cancel()`` that arrives just as
  the awaited event is set; :func:`wait_event` uses ``asyncio.timeout`` instead.
* asgiref's ``sync_to_async``, cancelled mid-call, waits for the thread to finish
  and then returns normally; :func:`in_thread` re-raises the cancellation.

:func:`in_thread` runs the worker's database calls on one thread of its own, with
its own database connection. More threads do not help the streams: each
holds the interpreter while Django builds its queries, and when a hundred answers
end together, threads saving their replies leave the event loop (and every other
run's tokens) waiting for its turn. With one thread it waits for at most that one;
the writes that come in bursts are batched instead (see starts.py). SQLite uses
asgiref's one shared thread: its shared in-memory test databases refuse access
from a second thread.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async

P = ParamSpec("P")
R = TypeVar("R")

#: Threads (and so database connections) for the worker's database calls. In the
#: benchmark, with a hundred answers ending together, the last tokens of the other
#: runs waited 40-70 ms (p99) behind the reply writes of 2 threads, 20-45 ms behind
#: those of 1 (see the module docstring).
DATABASE_THREADS = 1
_executors: list[ThreadPoolExecutor | None] = []


def _executor() -> ThreadPoolExecutor | None:
    """The worker's database threads (``None``: asgiref's one shared thread)."""
    if not _executors:
        from django.db import connection

        if connection.vendor == "sqlite":
            _executors.append(None)
        else:
            pool = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="relaybridge-db")
            _executors.append(pool)
    return _executors[0]


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def in_thread(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``sync_to_async(func)`` that honours a cancellation requested during the call."""

    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        executor = _executor()
        if executor is None:
            call = sync_to_async(func)
        else:
            call = sync_to_async(func, thread_sensitive=False, executor=executor)
        result = await call(*args, **kwargs)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return result

    return run
