"""Matching Relay's frames to submissions (relay-protocol.md §6.1).

``accepted`` and null-event ``error`` frames carry no reference to what we
sent: Relay answers each event exactly once, in submission order per
connection. So the oldest pending submission whose (agent, thread) matches the
``accepted`` session key gets it, else the head of the FIFO; a refusal goes to
the oldest pending submission of its agent, else the head. Every later frame
names its event id.

Each function records the change in the :class:`SubmissionBook` and says what it meant.
"""

from __future__ import annotations

from typing import NamedTuple

from .errors import ProtocolError
from .frames import Accepted, Error, Reply, Token
from .outcomes import (
    ConnectionFailed,
    EventFailed,
    LateFrame,
    Outcome,
    ReplyReceived,
    Submission,
    SubmissionAccepted,
    SubmissionRejected,
    TokenReceived,
    UnknownEvent,
)
from .policy import policy_for
from .session_key import parse_session_key
from .submissions import SubmissionBook


class Correlated(NamedTuple):
    outcome: Outcome
    #: The submission that just ended, when the frame ended one.
    ended: Submission | None = None


def on_accepted(book: SubmissionBook, frame: Accepted) -> Correlated:
    known = book.ref_of_event(frame.event_id)
    if known is not None:
        return Correlated(LateFrame(known, frame))  # a repeated acceptance; the first counted
    try:
        key = parse_session_key(frame.session_key)
        entry = book.oldest_pending(key.agent_id, key.thread_id)
    except ProtocolError:
        entry = book.oldest_pending(None)  # unreadable key: trust the FIFO head
    if entry is None:
        return Correlated(UnknownEvent(frame))
    book.take_pending(entry)
    if entry.abandoned:
        book.remember_finished(frame.event_id, entry.sub.ref)
        return Correlated(LateFrame(entry.sub.ref, frame))
    book.accept(entry, frame.event_id)
    return Correlated(SubmissionAccepted(entry.sub.ref, frame.event_id))


def on_refusal(book: SubmissionBook, frame: Error) -> Correlated:
    """A null-event error."""
    policy = policy_for(frame.code)
    entry = None if policy.connection_level else book.oldest_pending(frame.agent_id)
    if entry is None:
        # Not an answer to one of our events (e.g. a bad token right after
        # connecting): pending submissions stay pending.
        return Correlated(ConnectionFailed(policy.code, frame.error, frame))
    book.take_pending(entry)
    if entry.abandoned:
        return Correlated(LateFrame(entry.sub.ref, frame))
    book.finish(entry)
    rejected = SubmissionRejected(entry.sub.ref, policy.code, frame.error, frame)
    return Correlated(rejected, entry.sub)


def on_event_frame(book: SubmissionBook, frame: Token | Reply | Error, event_id: str) -> Correlated:
    """A token, reply or error naming its event."""
    entry = book.events.get(event_id)
    if entry is None:
        late = book.ref_of_event(event_id)
        return Correlated(UnknownEvent(frame) if late is None else LateFrame(late, frame))
    ref = entry.sub.ref
    if isinstance(frame, Token):
        return Correlated(TokenReceived(ref, event_id, frame.token))
    book.finish(entry)
    if isinstance(frame, Reply):
        return Correlated(ReplyReceived(ref, event_id, frame), entry.sub)
    code = policy_for(frame.code).code
    return Correlated(EventFailed(ref, event_id, code, frame.error, frame), entry.sub)
