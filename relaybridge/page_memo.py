"""Values a page reads once while relaybridge's template tags draw it.

A long thread's page names an agent once per run, reply and offer, and builds a
run's Retry/Stop URLs once per run: each agent name was a cache round trip plus
the parsing of the whole agent directory, each URL a ``reverse()``. Within
:func:`page_memo` -- which the tags enter with one dict per page (see
:mod:`relaybridge.page_cache`) -- :func:`remembered` computes each value once and
hands it out again; outside it (the relay worker, views) it computes every time.

Only values that cannot change while one page is drawn belong here.
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
    """Within it, :func:`remembered` keeps its values in ``memo``."""
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
