"""The per-app limiter the emulator enforces, with Relay's plans (protocol §5).

The plans' numbers come from :mod:`relaybridge.protocol.pacing`, the same ones
the relay worker paces itself by.

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

from ..protocol import pacing
from ..protocol.pacing import PlanLimits

MINUTE = pacing.MINUTE_S
HOUR = pacing.HOUR_S

Clock = Callable[[], float]


@dataclass(frozen=True)
class Plan:
    """A named set of rate limits for one app (the numbers: :mod:`relaybridge.protocol.pacing`)."""

    name: str
    limits: PlanLimits


PLANS: dict[str, Plan] = {name: Plan(name, limits) for name, limits in pacing.PLANS.items()}
STARTER = PLANS["starter"]
SCALE = PLANS["scale"]
UNLIMITED = PLANS["unlimited"]


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
        limits = self.plan.limits
        if limits.max_in_flight is not None and self.in_flight >= limits.max_in_flight:
            return f"Too many concurrent events (limit {limits.max_in_flight})"
        if limits.events_per_minute is not None:
            last_minute = sum(1 for at in self._accepted_at if at > now - MINUTE)
            if last_minute >= limits.events_per_minute:
                return f"Rate limit exceeded ({limits.events_per_minute} events per minute)"
        if limits.events_per_hour is not None and len(self._accepted_at) >= limits.events_per_hour:
            return f"Rate limit exceeded ({limits.events_per_hour} events per hour)"
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
