"""Giving memory back to the system once the worker has nothing to carry.

A thousand runs streaming at once take a few tens of megabytes (their texts, frames
and tasks). When they end, CPython and the C allocator keep most of the freed
memory for later instead of returning it, so the worker's resident size stays near
its peak for good. The first time the worker is idle after carrying runs, a full
garbage collection and glibc's ``malloc_trim`` give the free pages back. Idle means
nothing in flight, nothing queued and no run remembered, so the pause (a few
milliseconds) never falls on a stream.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
from collections.abc import Callable

logger = logging.getLogger("relaybridge.worker")


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None elsewhere (musl, macOS), where nothing is trimmed."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_malloc_trim = _load_malloc_trim()


class MemoryReturn:
    """Remembers whether runs were carried since memory was last given back."""

    def __init__(self) -> None:
        self._carried = False

    def check(self, carrying: int) -> bool:
        """Call now and then with how many runs the worker carries; True if it trimmed."""
        if carrying:
            self._carried = True
            return False
        if not self._carried:
            return False
        self._carried = False
        gc.collect()
        if _malloc_trim is not None:
            _malloc_trim(0)
        logger.debug("idle again: memory given back to the system")
        return True
