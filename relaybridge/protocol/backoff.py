"""Reconnect delays: exponential backoff with full jitter (relay-protocol.md §7).

The ceiling doubles from ``base_s`` up to ``cap_s``; each delay is drawn
uniformly from ``[0, ceiling)`` ("full jitter"), which spreads reconnecting
clients best. A connection that stayed up for ``healthy_after_s`` resets the
ceiling, and so does one that carried an agent's answer: Relay was up end to end,
so a later close is a new outage, not the same one going on (a Relay restarted
every few seconds must not push the wait for the next connection towards the cap,
and a reconnect per restart is no flood). Authentication failures jump straight
to the cap: retrying a revoked token quickly helps nobody and floods Relay.

The random source is injected so that tests can pin every draw.
"""

from __future__ import annotations

import random as _random
from collections.abc import Callable

#: Reconnect defaults from relay-protocol.md §7.
RECONNECT_BASE_S = 1.0
RECONNECT_CAP_S = 60.0
RECONNECT_HEALTHY_AFTER_S = 60.0


class Backoff:
    """Successive delays for one thing that keeps failing (e.g. reconnecting)."""

    def __init__(
        self,
        *,
        base_s: float = RECONNECT_BASE_S,
        cap_s: float = RECONNECT_CAP_S,
        healthy_after_s: float = RECONNECT_HEALTHY_AFTER_S,
        random: Callable[[], float] = _random.random,
    ) -> None:
        if not 0 < base_s <= cap_s:
            raise ValueError("backoff needs 0 < base_s <= cap_s")
        self.base_s = base_s
        self.cap_s = cap_s
        self.healthy_after_s = healthy_after_s
        self._random = random
        self._failures = 0

    @property
    def failures(self) -> int:
        """Failures counted since the last reset."""
        return self._failures

    @property
    def ceiling_s(self) -> float:
        """The upper bound of the next delay."""
        # Doubling stops at the cap; computing 2**failures for a large count
        # would overflow a float.
        ceiling = self.base_s
        for _ in range(self._failures):
            ceiling *= 2
            if ceiling >= self.cap_s:
                return self.cap_s
        return ceiling

    def _draw(self) -> float:
        # Clamped so that a misbehaving source cannot produce a negative or
        # over-the-cap delay.
        return min(max(self._random(), 0.0), 1.0)

    def next_delay(self) -> float:
        """The delay before the next attempt, in ``[0, ceiling)``; counts a failure."""
        delay = self._draw() * self.ceiling_s
        self._failures += 1
        return delay

    def next_auth_failure_delay(self) -> float:
        """The delay after an authentication failure: close to the cap.

        Drawn from the upper half of ``[0, cap]`` so that even a bad draw is not
        a hot loop; the ceiling stays at the cap until a reset.
        """
        while self.ceiling_s < self.cap_s:
            self._failures += 1
        return self.cap_s * (0.5 + 0.5 * self._draw())

    def reset(self) -> None:
        """Start over from ``base_s`` (after a healthy period)."""
        self._failures = 0

    def connection_closed(self, lasted_s: float, *, answered: bool = False) -> None:
        """Report how long the connection that just closed had been up, and whether an
        agent's answer (a token or a reply) came on it.

        A connection that stayed up for ``healthy_after_s``, or that carried an
        answer, proves the problem is gone: the next reconnect starts from ``base_s``.
        """
        if answered or lasted_s >= self.healthy_after_s:
            self.reset()
