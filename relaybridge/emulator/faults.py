"""Fault injection: the switches tests flip to make Relay misbehave on demand.

Kept apart from the routing code so that faults are data the router consults,
not special cases scattered through it: injected failures per event, agents
forced offline, and the delivery faults (duplicated, delayed and reordered
frames, a second ``reply`` for a finished event).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field

#: Injected codes that Relay reports *after* accepting the event (with its
#: event_id), as an agent would; every other code refuses the event up front.
AFTER_ACCEPT_CODES = frozenset({"AGENT_ERROR", "AGENT_TIMEOUT"})

DEFAULT_MESSAGES = {
    "AGENT_OFFLINE": "Agent not connected",
    "AGENT_ERROR": "Agent error (injected)",
    "AGENT_TIMEOUT": "Agent did not respond in time (injected)",
    "RATE_LIMITED": "Rate limit exceeded (injected)",
}


@dataclass(frozen=True)
class InjectedFailure:
    code: str
    message: str
    #: Only events for this agent are affected; ``None`` means any agent.
    agent_id: str | None = None

    @property
    def after_accept(self) -> bool:
        return self.code in AFTER_ACCEPT_CODES


#: Frames a client can recognise as repeated by their event id (a repeated token
#: cannot be told apart from an agent saying the same word twice, so it is never
#: duplicated: that would change the answer, not test the client).
DUPLICABLE_TYPES = frozenset({"accepted", "reply", "error"})


@dataclass(frozen=True)
class DeliveryFaults:
    """How Relay mangles the delivery of frames to apps, within what the protocol allows.

    Protocol §6: frames of different events interleave freely, while within one
    event the order stays ``accepted``, tokens, terminal frame. So a delay holds
    back one frame *and everything after it of the same event*; other events'
    frames overtake it, which reorders frames across events and never within one.
    """

    #: Probability that an ``accepted``, ``reply`` or ``error`` frame is sent twice.
    duplicate_rate: float = 0.0
    #: Each event frame for an app waits a random 0..this many ms before delivery.
    max_delay_ms: float = 0.0
    #: Probability that a finished event gets a second, different ``reply``.
    second_reply_rate: float = 0.0
    #: Seed of the fault dice; ``None`` draws a fresh one.
    seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("duplicate_rate", "second_reply_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1")
        if self.max_delay_ms < 0:
            raise ValueError("max_delay_ms must not be negative")

    @property
    def active(self) -> bool:
        return bool(self.duplicate_rate or self.max_delay_ms or self.second_reply_rate)


@dataclass
class DeliveryCounts:
    """What the delivery faults did (tests and the log report these)."""

    duplicated: int = 0
    delayed: int = 0
    second_replies: int = 0


@dataclass
class Faults:
    """The current fault switches of one emulator."""

    forced_offline: set[str] = field(default_factory=set)
    _fail_next: deque[InjectedFailure] = field(default_factory=deque)
    delivery: DeliveryFaults = field(default_factory=DeliveryFaults)
    delivered: DeliveryCounts = field(default_factory=DeliveryCounts)
    _dice: random.Random = field(default_factory=random.Random)

    def set_delivery(self, delivery: DeliveryFaults) -> None:
        """Switch delivery faults on (or off, with ``DeliveryFaults()``)."""
        self.delivery = delivery
        self._dice = random.Random(delivery.seed)

    def extra_copies(self, frame_type: object) -> int:
        """How many more times to send a frame of ``frame_type`` (0 or 1)."""
        rate = self.delivery.duplicate_rate
        if frame_type in DUPLICABLE_TYPES and rate and self._dice.random() < rate:
            self.delivered.duplicated += 1
            return 1
        return 0

    def delay_s(self) -> float:
        """How long to hold back the next event frame, in seconds."""
        if not self.delivery.max_delay_ms:
            return 0.0
        self.delivered.delayed += 1
        return self._dice.uniform(0.0, self.delivery.max_delay_ms) / 1000.0

    def wants_second_reply(self) -> bool:
        rate = self.delivery.second_reply_rate
        if rate and self._dice.random() < rate:
            self.delivered.second_replies += 1
            return True
        return False

    def fail_next_events(
        self, count: int, code: str, message: str | None = None, agent_id: str | None = None
    ) -> None:
        """Make the next ``count`` valid events (optionally for one agent) fail with ``code``."""
        text = message or DEFAULT_MESSAGES.get(code, f"{code} (injected)")
        self._fail_next.extend(InjectedFailure(code, text, agent_id) for _ in range(count))

    def take_failure(self, agent_id: str) -> InjectedFailure | None:
        """Consume the first pending injected failure that applies to ``agent_id``."""
        for failure in self._fail_next:
            if failure.agent_id is None or failure.agent_id == agent_id:
                self._fail_next.remove(failure)
                return failure
        return None

    @property
    def pending_failures(self) -> int:
        return len(self._fail_next)

    def clear(self) -> None:
        self.forced_offline.clear()
        self._fail_next.clear()
        self.set_delivery(DeliveryFaults())
