"""Where every submission of a :class:`~relaybridge.protocol.session.RelaySession` is.

The :class:`SubmissionBook` holds the state and keeps its invariants: a ref is in
exactly one of queue, pending or accepted while active; a (agent, thread) gate is
held by at most one sent, non-terminal ref; finished event ids are remembered
(bounded) so late frames are recognised. The session decides; the book records
(and :mod:`.correlation` matches frames against it). Not to be confused with the
run ledger (:class:`~relaybridge.models.AgentRun`), which is the database's.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .lanes import LaneQueue
from .outcomes import RefState, SessionCounts, Submission


@dataclass(slots=True, eq=False)
class Entry:
    """One active submission (compared by identity)."""

    seq: int  # submission order, which each lane of the queue keeps
    sub: Submission
    state: RefState = RefState.QUEUED
    event_id: str | None = None
    # Abandoned while pending: stays in the pending FIFO only to absorb the
    # accepted/refusal Relay still owes for it, so later matches stay right.
    abandoned: bool = False


class SubmissionBook:
    """The submissions of one session, indexed every way the session asks."""

    def __init__(self, remember_finished: int) -> None:
        self._remember = remember_finished
        self._next_seq = 0
        self.active: dict[str, Entry] = {}  # every non-terminal ref
        self.queue = LaneQueue()  # QUEUED, by asker, each lane by seq
        self.pending: list[Entry] = []  # sent on this connection, in send order
        self.events: dict[str, Entry] = {}  # ACCEPTED, by event id
        self.gate: dict[tuple[str, str], str] = {}  # (agent, thread) → ref in flight
        self._finished: OrderedDict[str, str] = OrderedDict()  # event id → ref
        #: ref → seq of its first submission here: a ref submitted again (an answer
        #: asked again, a retry) waits at the place its run came in, not behind the
        #: runs that came after it.
        self._first_seq: OrderedDict[str, int] = OrderedDict()

    # --- transitions ----------------------------------------------------------

    def add(self, sub: Submission) -> None:
        seq = self._first_seq.get(sub.ref)
        if seq is None:
            seq = self._first_seq[sub.ref] = self._next_seq
            self._next_seq += 1
            while len(self._first_seq) > self._remember:
                self._first_seq.popitem(last=False)
        entry = Entry(seq, sub)
        self.active[sub.ref] = entry
        self.queue.insert(entry)  # at its place in its lane: last, unless submitted before

    def mark_sent(self, entry: Entry) -> None:
        """QUEUED → PENDING; the entry's lane goes to the back of the rotation.

        The entry stays in ``queue`` (so :attr:`in_flight` lags) until the caller
        calls :meth:`compact_queue` after its batch: one pass instead of one
        removal per send.
        """
        entry.state = RefState.PENDING
        self.gate[entry.sub.pair] = entry.sub.ref
        self.pending.append(entry)
        self.queue.served(entry)

    def compact_queue(self) -> None:
        self.queue.compact()

    def requeue_pending(self) -> list[str]:
        """Every live pending entry back to the queue, at its place in its lane."""
        refs = []
        for entry in self.pending:
            if entry.abandoned:
                continue  # its answer can no longer come: forget it
            entry.state = RefState.QUEUED
            self.release_gate(entry)
            self.queue.insert(entry)
            refs.append(entry.sub.ref)
        self.pending.clear()
        return refs

    def take_pending(self, entry: Entry) -> None:
        self.pending.remove(entry)

    def accept(self, entry: Entry, event_id: str) -> None:
        entry.state = RefState.ACCEPTED
        entry.event_id = event_id
        self.events[event_id] = entry

    def finish(self, entry: Entry) -> None:
        """The entry reached a terminal frame: it is no longer active."""
        del self.active[entry.sub.ref]
        self.release_gate(entry)
        if entry.event_id is not None:
            del self.events[entry.event_id]
            self.remember_finished(entry.event_id, entry.sub.ref)

    def abandon(self, ref: str) -> bool:
        entry = self.active.get(ref)
        if entry is None:
            return False
        if entry.state is RefState.QUEUED:
            del self.active[ref]
            self.queue.remove(entry)
        elif entry.state is RefState.PENDING:
            del self.active[ref]
            self.release_gate(entry)
            entry.abandoned = True
        else:
            self.finish(entry)
        return True

    def release_gate(self, entry: Entry) -> None:
        if self.gate.get(entry.sub.pair) == entry.sub.ref:
            del self.gate[entry.sub.pair]

    def remember_finished(self, event_id: str, ref: str) -> None:
        self._finished[event_id] = ref
        while len(self._finished) > self._remember:
            self._finished.popitem(last=False)

    # --- queries --------------------------------------------------------------

    def ref_of_event(self, event_id: str) -> str | None:
        """The ref of an accepted or recently finished event."""
        entry = self.events.get(event_id)
        return entry.sub.ref if entry is not None else self._finished.get(event_id)

    def oldest_pending(self, agent_id: str | None, thread_id: str | None = None) -> Entry | None:
        """The oldest pending entry for ``agent_id`` (and thread), else the head."""
        for entry in self.pending:
            if entry.sub.agent_id == agent_id and thread_id in (None, entry.sub.thread_id):
                return entry
        return self.pending[0] if self.pending else None

    @property
    def in_flight(self) -> int:
        return len(self.active) - len(self.queue)

    def counts(self) -> SessionCounts:
        accepted = len(self.events)
        return SessionCounts(
            queued=len(self.queue), pending=self.in_flight - accepted, accepted=accepted
        )

    def in_flight_refs(self) -> list[str]:
        entries = (e for e in self.active.values() if e.state is not RefState.QUEUED)
        return [e.sub.ref for e in sorted(entries, key=lambda e: e.seq)]
