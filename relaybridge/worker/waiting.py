"""Awaiting without losing a cancellation.

Two library behaviours would otherwise let a cancelled worker loop keep running,
so that shutdown and reconnects hang:

* Python 3.11's ``asyncio.wait_for`` can swallow a ``cancel()`` that arrives just as
  the awaited event is set; :func:`wait_event` uses ``asyncio.timeout`` instead.
* asgiref's ``sync_to_async``, cancelled mid-call, waits for the thread to finish
  and then returns normally; :func:`in_thread` re-raises the cancellation.

:func:`in_thread` runs calls on a small pool of threads of its own, not on
asgiref's single shared thread: the worker's database calls are independent
conditional updates of different runs, and one thread would queue them all behind
each other (a hundred runs starting together would wait for one commit after
another). Each thread holds its own database connection. SQLite keeps asgiref's
one thread: it takes one writer at a time anyway, and its shared in-memory test
databases refuse concurrent access outright instead of waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async

P = ParamSpec("P")
R = TypeVar("R")

#: Threads (and so database connections) for the worker's database calls.
#: Two, not more: each thread holds the interpreter while Django builds its queries,
#: and where a hundred answers end together eight threads saving replies left the
#: event loop, and every other run's tokens, waiting three times as long as two did.
DATABASE_THREADS = 2
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
