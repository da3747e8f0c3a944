"""Fault injection: the switches tests flip to make Relay misbehave on demand.

Kept apart from the routing code so that new faults (frame duplication,
reordering, a raw mode) are added here as data the router consults, not as
special cases scattered through it.
"""

from __future__ import annotations

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


@dataclass
class Faults:
    """The current fault switches of one emulator."""

    forced_offline: set[str] = field(default_factory=set)
    _fail_next: deque[InjectedFailure] = field(default_factory=deque)

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
