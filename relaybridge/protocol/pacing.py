"""Relay's plan limits (relay-protocol.md §5) and sliding-window pacing.

Relay counts events per app per minute and per hour and caps concurrent events.
Pacing locally to the same numbers makes ``RATE_LIMITED`` rare. The windows
slide: an event sent at ``t`` counts until ``t + window + margin``. The margin
absorbs the difference between when we send and when Relay's clock sees the
frame, so a send exactly one window later cannot land inside Relay's window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

MINUTE_S = 60.0
HOUR_S = 3600.0


@dataclass(frozen=True, slots=True)
class PlanLimits:
    """Events per minute and per hour, and events in flight; ``None`` lifts a limit."""

    events_per_minute: int | None
    events_per_hour: int | None
    max_in_flight: int | None

    def __post_init__(self) -> None:
        for name in ("events_per_minute", "events_per_hour", "max_in_flight"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name} must be at least 1, or None for no limit")

    @property
    def windowed(self) -> bool:
        """Does a window count this plan's events? Not without limits (the emulator's
        ``unlimited``, for benchmarks): events sent so never count against a plan."""
        return self.events_per_minute is not None or self.events_per_hour is not None


STARTER = PlanLimits(events_per_minute=60, events_per_hour=3_600, max_in_flight=10)
SCALE = PlanLimits(events_per_minute=300, events_per_hour=18_000, max_in_flight=50)
#: No local limits at all: for benchmarks against the emulator, never for Relay.
UNLIMITED = PlanLimits(events_per_minute=None, events_per_hour=None, max_in_flight=None)

PLANS: dict[str, PlanLimits] = {"starter": STARTER, "scale": SCALE, "unlimited": UNLIMITED}


def plan_limits(name: str) -> PlanLimits:
    """The limits of the plan called ``name`` (``starter``, ``scale``, ``unlimited``)."""
    try:
        return PLANS[name.strip().lower()]
    except KeyError:
        choices = ", ".join(sorted(PLANS))
        raise ValueError(f"unknown plan {name!r}; choose one of {choices}") from None


class SlidingWindow:
    """At most ``limit`` events in any ``length_s`` (plus ``margin_s``) seconds."""

    def __init__(self, limit: int | None, length_s: float, margin_s: float = 0.0) -> None:
        self.limit = limit
        self.span_s = length_s + margin_s
        self._times: deque[float] = deque()

    def _expire(self, now: float) -> None:
        while self._times and self._times[0] + self.span_s <= now:
            self._times.popleft()

    def count(self, now: float) -> int:
        self._expire(now)
        return len(self._times)

    def free_at(self, now: float) -> float | None:
        """``None`` if an event may go now, else the earliest time one may."""
        if self.limit is None:
            return None
        self._expire(now)
        if len(self._times) < self.limit:
            return None
        # The oldest event that must leave the window for a slot to open.
        return self._times[len(self._times) - self.limit] + self.span_s

    def record(self, now: float) -> None:
        if self.limit is not None:
            self._times.append(now)


class Pacer:
    """The per-minute and per-hour windows of one plan, checked together."""

    def __init__(self, limits: PlanLimits, margin_s: float = 0.0) -> None:
        self.margin_s = margin_s
        self.minute = SlidingWindow(limits.events_per_minute, MINUTE_S, margin_s)
        self.hour = SlidingWindow(limits.events_per_hour, HOUR_S, margin_s)

    def set_limits(self, limits: PlanLimits) -> None:
        """Change the limits; recorded events keep counting.

        A window records nothing while it is unlimited (an hour of benchmark
        traffic would otherwise pile up), so events sent then never count.
        """
        self.minute.limit = limits.events_per_minute
        self.hour.limit = limits.events_per_hour

    def free_at(self, now: float) -> float | None:
        """``None`` if an event may go now, else when the next one may."""
        waits = [t for t in (self.minute.free_at(now), self.hour.free_at(now)) if t is not None]
        return max(waits) if waits else None

    def allow(self, now: float) -> bool:
        """Record an event at ``now`` if the windows have room; say whether they had."""
        if self.free_at(now) is not None:
            return False
        self.record(now)
        return True

    def record(self, now: float) -> None:
        self.minute.record(now)
        self.hour.record(now)

    def recall(self, sent: Iterable[float]) -> None:
        """Count events sent before this pacer existed (by an earlier connection holder).

        Call before anything is recorded: the windows keep their times in order.
        """
        for at in sorted(sent):
            self.record(at)
