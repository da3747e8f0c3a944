"""Values a page reads once while relaybridge's template tags draw it.

A long thread's page names an agent once per run, reply and offer, and builds a
run's Retry/Stop URLs once per run: each agent name was a cache round trip plus
the parsing of the whole agent directory, each URL a ``reverse()``. Within
:func:`page_memo` -- which the tags enter with one dict per page (see
:mod:`relaybridge.page_cache`), and the relay worker with one dict per trip to
its database thread (saving a reply read the directory four times) -- :func:`remembered`
computes each value once and hands it out again; outside it (views) it computes
every time.

Only values that cannot change while one page is drawn belong here; what changes
one of them within a page or a trip (the agent directory stored again) calls
:func:`forget`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

_memo: ContextVar[dict[str, Any] | None] = ContextVar("relaybridge_page_memo", default=None)


@contextmanager
def page_memo(memo: dict[str, Any]) -> Iterator[None]:
    """Within it, :func:`remembered` keeps its values in ``memo``.

    Within a memo already in force (a fragment the relay worker draws during one
    trip to its database thread), that one is kept: what cannot change while the
    outer scope lasts cannot change while the inner one does.
    """
    if _memo.get() is not None:
        yield
        return
    token = _memo.set(memo)
    try:
        yield
    finally:
        _memo.reset(token)


def remembered(key: str, compute: Callable[[], T]) -> T:
    """``compute()``, once per page while a page is drawn, else every time."""
    memo = _memo.get()
    if memo is None:
        return compute()
    if key not in memo:
        memo[key] = compute()
    found: T = memo[key]
    return found


def forget(key: str) -> None:
    """Drop ``key`` from the memo in force, if any: its value was just changed."""
    memo = _memo.get()
    if memo is not None:
        memo.pop(key, None)
