"""The values :class:`relaybridge.protocol.session.RelaySession` takes and returns.

A submission goes in; decisions come out: what to send now and when to ask
again (:class:`SendBatch`), and what each Relay frame meant for our runs (the
outcome classes). ``ref`` is always the caller's own run reference. The frames
the session wants sent in answer (a ``pong``, a ``discover``) are no outcome: the
caller collects them with :meth:`RelaySession.data_to_send` after every call.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TypeAlias

from .frames import (
    Accepted,
    AgentInfo,
    Error,
    Event,
    JSONObject,
    RelayToAppFrame,
    Reply,
    Token,
)
from .jsonvalue import freeze_attribute


@dataclass(frozen=True, slots=True)
class Submission:
    """One event to send for the run ``ref``.

    ``asker`` says whose turn it waits for (:mod:`.lanes`): a key for the person who
    asked, or ``None`` for runs no person asked for, which share one lane.
    """

    ref: str
    agent_id: str
    thread_id: str
    payload: JSONObject
    asker: str | None = None

    def __post_init__(self) -> None:
        freeze_attribute(self, "payload")

    @property
    def pair(self) -> tuple[str, str]:
        """The (agent, thread) gate this submission waits on (relay-protocol.md §6.2)."""
        return (self.agent_id, self.thread_id)

    def to_event(self) -> Event:
        return Event(self.agent_id, self.thread_id, self.payload)


@dataclass(frozen=True, slots=True)
class SendBatch:
    """Send these now, in this order; ask again at ``wake_at`` (if not ``None``).

    ``wake_at`` is set only when something waits on time (pacing windows or a
    rate-limit hold). Waits on a thread gate or on the in-flight cap end with a
    frame, after which the caller asks again anyway.
    """

    send: tuple[Submission, ...]
    wake_at: float | None


class RefState(Enum):
    """Where an active submission is."""

    QUEUED = "queued"  # waiting to be sent
    PENDING = "pending"  # sent on this connection, waiting for accepted or a refusal
    ACCEPTED = "accepted"  # Relay minted an event id; waiting for its terminal frame


@dataclass(frozen=True, slots=True)
class SessionCounts:
    queued: int
    pending: int
    accepted: int

    @property
    def in_flight(self) -> int:
        """Sent and not terminal: what the in-flight cap limits."""
        return self.pending + self.accepted


# --- outcomes of on_frame / on_disconnect ----------------------------------------


@dataclass(frozen=True, slots=True)
class SubmissionAccepted:
    ref: str
    event_id: str


@dataclass(frozen=True, slots=True)
class SubmissionRejected:
    """Relay refused the event before accepting it (a null-event error). Terminal."""

    ref: str
    code: str  # normalized; frame.code is the raw spelling
    error: str
    frame: Error


@dataclass(frozen=True, slots=True)
class TokenReceived:
    ref: str
    event_id: str
    text: str


@dataclass(frozen=True, slots=True)
class ReplyReceived:
    """Terminal success; ``reply.reply`` replaces the streamed text."""

    ref: str
    event_id: str
    reply: Reply


@dataclass(frozen=True, slots=True)
class EventFailed:
    """An accepted event ended in an error. Terminal."""

    ref: str
    event_id: str
    code: str  # normalized
    error: str
    frame: Error


@dataclass(frozen=True, slots=True)
class AgentsDiscovered:
    agents: tuple[AgentInfo, ...]


@dataclass(frozen=True, slots=True)
class PingReceived:
    """Relay pinged; the answering ``pong`` waits in :meth:`RelaySession.data_to_send`."""


@dataclass(frozen=True, slots=True)
class PongReceived:
    """Relay answered our ``ping``: the connection is alive."""


@dataclass(frozen=True, slots=True)
class ConnectionFailed:
    """A null-event error about the connection, not a submission (e.g. a bad token)."""

    code: str  # normalized
    error: str
    frame: Error


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A frame for an event id never seen, or an ``accepted`` with nothing pending."""

    frame: Accepted | Token | Reply | Error


@dataclass(frozen=True, slots=True)
class LateFrame:
    """A frame for a run that already ended or was abandoned; ignored, never delivered."""

    ref: str
    frame: Accepted | Token | Reply | Error


@dataclass(frozen=True, slots=True)
class UnhandledFrame:
    """A frame with no meaning for the session (an unknown type): log it."""

    frame: RelayToAppFrame


@dataclass(frozen=True, slots=True)
class Requeued:
    """Sent but never accepted before the connection dropped: it will be sent again."""

    ref: str


Outcome: TypeAlias = (
    SubmissionAccepted
    | SubmissionRejected
    | TokenReceived
    | ReplyReceived
    | EventFailed
    | AgentsDiscovered
    | PingReceived
    | PongReceived
    | ConnectionFailed
    | UnknownEvent
    | LateFrame
    | UnhandledFrame
    | Requeued
)
