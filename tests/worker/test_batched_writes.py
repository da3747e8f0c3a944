"""First-token and progress writes of runs arriving together share one write."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from typing import Any

from relaybridge.worker.database import BatchedWrites


class Ledger:
    """A write that changes the runs it knows, one batch at a time, and remembers them."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.batches: list[dict[Any, datetime]] = []
        self.release = threading.Event()
        self.release.set()
        #: Set when a write has begun (and waits for ``release``).
        self.entered = threading.Event()

    async def write_begun(self) -> None:
        assert await asyncio.to_thread(self.entered.wait, 10), "no write began"

    def write(self, arrivals: dict[Any, datetime]) -> set[Any]:
        self.entered.set()
        self.release.wait(10)
        self.batches.append(arrivals)
        return {run for run in arrivals if run in self.known}


async def test_runs_arriving_during_a_write_share_the_next_one() -> None:
    ledger = Ledger({f"run-{n}" for n in range(10)})
    ledger.release.clear()
    writes = BatchedWrites(ledger.write, "first token")
    first = asyncio.create_task(writes.add("run-0"))
    await ledger.write_begun()  # the first write is under way, held
    rest = [asyncio.create_task(writes.add(f"run-{n}")) for n in range(1, 12)]
    await asyncio.sleep(0)  # each has asked for its write
    ledger.release.set()
    assert await first is True
    # run-10 and run-11 are not known: the write did not change them.
    assert await asyncio.gather(*rest) == [True] * 9 + [False, False]
    assert [sorted(batch) for batch in ledger.batches] == [
        ["run-0"],
        sorted(f"run-{n}" for n in range(1, 12)),
    ]


async def test_a_run_added_twice_before_a_write_gets_both_answers() -> None:
    ledger = Ledger({"run-a"})
    ledger.release.clear()
    writes = BatchedWrites(ledger.write, "progress")
    held = asyncio.create_task(writes.add("run-b"))
    await ledger.write_begun()
    twice = [asyncio.create_task(writes.add("run-a")) for _ in range(2)]
    await asyncio.sleep(0)
    ledger.release.set()
    assert await held is False
    assert await asyncio.gather(*twice) == [True, True]
    assert list(ledger.batches[1]) == ["run-a"]  # written once, as of its later arrival


async def test_a_failed_write_answers_none_and_the_next_one_goes_on(caplog: Any) -> None:
    calls = 0

    def write(arrivals: dict[Any, datetime]) -> set[Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the database went away")
        return set(arrivals)

    writes = BatchedWrites(write, "progress")
    assert await writes.add("run-1") is None
    assert "could not record the progress of 1 run(s)" in caplog.text
    assert await writes.add("run-2") is True
