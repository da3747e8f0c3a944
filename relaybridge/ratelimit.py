"""A per-user request rate kept in the Django cache, so every process counts together.

A fixed window: ``"30/min"`` lets a user make 30 requests in each clock minute
(at most twice that across a minute's edge). The counters live in
``RELAYBRIDGE_CACHE_ALIAS``; with a cache the processes share (Redis, Memcached,
the database) the limit holds however many processes serve the site; with the
local-memory cache each process counts on its own.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.core.cache import caches

from .conf import relay_settings


def retry_after(scope: str, user: Any, rate: tuple[int, int]) -> int | None:
    """Count one request of ``user`` to ``scope``: None if allowed, else seconds to wait."""
    allowed, period = rate
    now = time.time()
    window = int(now // period)
    key = f"relaybridge:rate:{scope}:{user.pk}:{period}:{window}"
    cache = caches[relay_settings.CACHE_ALIAS]
    cache.add(key, 0, timeout=period + 1)
    try:
        used = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=period + 1)
        used = 1
    if used <= allowed:
        return None
    return max(1, math.ceil((window + 1) * period - now))
