"""Awaiting without losing a cancellation.

Two library behaviours would otherwise let a cancelled worker loop keep running,
so that shutdown and reconnects hang:

* Python 3.11's ``asyncio.wait_for`` can swallow a ``cancel()`` that arrives just as
  the awaited event is set; :func:`wait_event` uses ``asyncio.timeout`` instead.
* asgiref's ``sync_to_async``, cancelled mid-call, waits for the thread to finish
  and then returns normally; :func:`in_thread` re-raises the cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async

P = ParamSpec("P")
R = TypeVar("R")


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
    call = sync_to_async(func)

    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        result = await call(*args, **kwargs)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return result

    return run
