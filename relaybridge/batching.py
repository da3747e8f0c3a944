"""Requests that wait at the same moment, sent together in one round trip.

A caller awaits :class:`RoundTrips` with its request; while one round trip is under
way, the requests that arrive wait for the next, which carries all of them. Nothing
waits on purpose: a lone request goes at once, and under load a round trip carries
whatever piled up during the previous one, so throughput grows with the load instead
of each request queueing behind the others' round trips. Unless ``gather`` is given:
then each round trip waits that long for company first, for work that is better
done once, a little later, than many times at a busy moment; :meth:`RoundTrips.hurry`
sends what waits at once, for a caller that cannot wait.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

#: ``send`` answers each request, in order, with its result or the exception for it.
Send = Callable[[list[T]], Awaitable[list[R | Exception]]]


async def wait_event(event: asyncio.Event, seconds: float | None) -> bool:
    """Wait until ``event`` is set or ``seconds`` pass; True if it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


class RoundTrips(Generic[T, R]):
    def __init__(self, send: Send[T, R], *, gather: float = 0.0) -> None:
        if gather < 0:
            raise ValueError("gather cannot be negative")
        self._send = send
        self._gather = gather
        self._hurry = asyncio.Event()
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def __call__(self, request: T) -> R:
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((request, answer))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_waiting())
        return await answer

    def hurry(self) -> None:
        """End the gathering: what waits, or comes next, goes in a round trip at once."""
        self._hurry.set()

    async def _send_waiting(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        try:
            while self._waiting:
                if self._gather:
                    await wait_event(self._hurry, self._gather)
                self._hurry.clear()
                batch, self._waiting = self._waiting, []
                try:
                    results = await self._send([request for request, _answer in batch])
                except Exception as exc:  # the round trip failed: so did each request
                    results = [exc] * len(batch)
                if len(results) != len(batch):
                    raise RuntimeError(f"{len(results)} answers to {len(batch)} requests")
                for (_request, answer), result in zip(batch, results, strict=True):
                    if answer.done():  # its caller was cancelled
                        continue
                    if isinstance(result, Exception):
                        answer.set_exception(result)
                    else:
                        answer.set_result(result)
        finally:
            # Cancelled, or ``send`` broke its promise: no caller may wait for ever.
            for _request, answer in [*batch, *self._waiting]:
                if not answer.done():
                    answer.cancel()
            self._waiting.clear()
