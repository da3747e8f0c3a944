"""Relay's published plans and the per-app limiter the emulator enforces (protocol §5).

Only accepted events count against the windows: a refused event (offline agent,
validation error, rate limit itself) costs nothing, so a client that retries
``AGENT_OFFLINE`` never locks itself out. Queued and running events count towards
the in-flight cap until their terminal frame.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

MINUTE = 60.0
HOUR = 3600.0

Clock = Callable[[], float]


@dataclass(frozen=True)
class Plan:
    """Rate limits for one app; ``None`` means no limit of that kind."""

    name: str
    events_per_minute: int | None
    events_per_hour: int | None
    concurrent_events: int | None


STARTER = Plan("starter", 60, 3_600, 10)
SCALE = Plan("scale", 300, 18_000, 50)
UNLIMITED = Plan("unlimited", None, None, None)

PLANS: dict[str, Plan] = {plan.name: plan for plan in (STARTER, SCALE, UNLIMITED)}


@dataclass
class AppLimiter:
    """Sliding-window counters and the in-flight count for one app id."""

    plan: Plan
    clock: Clock = time.monotonic
    in_flight: int = 0
    _accepted_at: deque[float] = field(default_factory=deque)

    def refusal(self) -> str | None:
        """Why one more event would be refused now, or ``None`` if it may go."""
        now = self.clock()
        self._forget_before(now - HOUR)
        plan = self.plan
        if plan.concurrent_events is not None and self.in_flight >= plan.concurrent_events:
            return f"Too many concurrent events (limit {plan.concurrent_events})"
        if plan.events_per_minute is not None:
            last_minute = sum(1 for at in self._accepted_at if at > now - MINUTE)
            if last_minute >= plan.events_per_minute:
                return f"Rate limit exceeded ({plan.events_per_minute} events per minute)"
        if plan.events_per_hour is not None and len(self._accepted_at) >= plan.events_per_hour:
            return f"Rate limit exceeded ({plan.events_per_hour} events per hour)"
        return None

    def accept(self) -> None:
        """Count one accepted event: it is now in flight and in both windows."""
        self._accepted_at.append(self.clock())
        self.in_flight += 1

    def finish(self) -> None:
        """The event reached its terminal frame."""
        self.in_flight = max(0, self.in_flight - 1)

    def _forget_before(self, cutoff: float) -> None:
        while self._accepted_at and self._accepted_at[0] <= cutoff:
            self._accepted_at.popleft()
