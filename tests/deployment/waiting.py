"""Waiting with a deadline: the multi-process tests never trust a sleep to be long enough."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal, TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T | Literal[False] | None],
    timeout: float,
    what: str,
    *,
    interval: float = 0.1,
) -> T:
    """Call ``predicate`` until it returns something truthy; return that value.

    Fails the test with ``what`` and the last value seen when ``timeout`` passes.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:g} s waiting for {what}; last: {value!r}"
            )
        time.sleep(interval)


class Checks(dict[str, bool]):
    """Named conditions, true only when all of them are.

    As a predicate's value it makes a failed wait say which condition broke.
    """

    def __bool__(self) -> bool:
        return all(self.values())


def assert_stays(
    predicate: Callable[[], object], seconds: float, what: str, *, interval: float = 0.1
) -> None:
    """Fail as soon as ``predicate`` is falsy during the next ``seconds``.

    For claims that something does *not* happen (a second connection, a hot
    reconnect loop), which can only be observed over a window of time.
    """
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if not value:
            raise AssertionError(
                f"expected {what} to hold for {seconds:g} s; it stopped: {value!r}"
            )
        if time.monotonic() >= deadline:
            return
        time.sleep(interval)
