"""Requests waiting at the same moment share a round trip, each with its own answer."""

from __future__ import annotations

import asyncio

import pytest

from relaybridge.batching import RoundTrips


class Counter:
    """A ``send`` that answers each number with its double, refuses 13, and records
    how many requests each round trip carried."""

    def __init__(self) -> None:
        self.trips: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()

    async def send(self, batch: list[int]) -> list[int | Exception]:
        self.trips.append(batch)
        await self.release.wait()
        return [ValueError("13 is refused") if n == 13 else 2 * n for n in batch]


async def test_a_lone_request_goes_at_once_and_gets_its_answer() -> None:
    counter = Counter()
    trips = RoundTrips(counter.send)
    assert await trips(4) == 8
    assert counter.trips == [[4]]


async def test_requests_arriving_during_a_round_trip_share_the_next() -> None:
    counter = Counter()
    counter.release.clear()
    trips = RoundTrips(counter.send)
    first = asyncio.create_task(trips(1))
    await asyncio.sleep(0)  # the first round trip is under way, held
    rest = [asyncio.create_task(trips(n)) for n in range(2, 12)]
    await asyncio.sleep(0)
    counter.release.set()
    assert await first == 2
    assert await asyncio.gather(*rest) == [2 * n for n in range(2, 12)]
    assert counter.trips == [[1], list(range(2, 12))]


async def test_a_gathering_round_trip_waits_for_company_first() -> None:
    counter = Counter()
    trips = RoundTrips(counter.send, gather=2.0)
    first = asyncio.create_task(trips(1))
    await asyncio.sleep(0.05)  # well inside the 2 s gather: it joins the first trip
    second = asyncio.create_task(trips(2))
    assert list(await asyncio.gather(first, second)) == [2, 4]
    assert counter.trips == [[1, 2]]
    # Nothing piled up meanwhile: the next request gathers afresh.
    assert await trips(3) == 6
    assert counter.trips == [[1, 2], [3]]
    with pytest.raises(ValueError, match="negative"):
        RoundTrips(counter.send, gather=-1.0)


async def test_a_hurried_round_trip_stops_gathering() -> None:
    counter = Counter()
    trips = RoundTrips(counter.send, gather=60.0)
    waiting = asyncio.create_task(trips(1))
    await asyncio.sleep(0.05)  # gathering, for a minute
    trips.hurry()
    assert await asyncio.wait_for(waiting, 10.0) == 2
    # A hurry that finds nothing waiting holds for the next request.
    trips.hurry()
    assert await asyncio.wait_for(trips(5), 10.0) == 10
    assert counter.trips == [[1], [5]]


async def test_one_refused_request_fails_alone() -> None:
    counter = Counter()
    trips = RoundTrips(counter.send)
    results = await asyncio.gather(trips(12), trips(13), trips(14), return_exceptions=True)
    assert results[0] == 24 and results[2] == 28
    assert isinstance(results[1], ValueError) and "13 is refused" in str(results[1])


async def test_a_failed_round_trip_fails_each_of_its_requests_and_the_next_goes_on() -> None:
    calls = 0

    async def send(batch: list[int]) -> list[int | Exception]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("the server went away")
        return list(batch)

    trips = RoundTrips(send)
    failed = await asyncio.gather(trips(1), trips(2), return_exceptions=True)
    assert [type(f) for f in failed] == [ConnectionError, ConnectionError]
    assert await trips(3) == 3


async def test_a_cancelled_caller_does_not_disturb_the_others() -> None:
    counter = Counter()
    counter.release.clear()
    trips = RoundTrips(counter.send)
    first = asyncio.create_task(trips(1))
    await asyncio.sleep(0)
    leaving, staying = asyncio.create_task(trips(2)), asyncio.create_task(trips(3))
    await asyncio.sleep(0)
    leaving.cancel()
    counter.release.set()
    assert await first == 2 and await staying == 6
    with pytest.raises(asyncio.CancelledError):
        await leaving


async def test_callers_waiting_on_a_cancelled_sender_are_cancelled_too() -> None:
    counter = Counter()
    counter.release.clear()
    trips = RoundTrips(counter.send)
    first = asyncio.create_task(trips(1))
    await asyncio.sleep(0)
    queued = asyncio.create_task(trips(2))
    await asyncio.sleep(0)
    assert trips._sender is not None
    trips._sender.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    with pytest.raises(asyncio.CancelledError):
        await queued
    counter.release.set()
    assert await trips(5) == 10  # a new sender for the next request
