"""The app side of a Relay connection as a pure state machine.

:class:`RelaySession` decides; the caller does the I/O. It keeps the queue of
submissions, sends them through the per-(agent, thread) gate, the in-flight cap
and the pacing windows, the people asking taking turns (:mod:`.lanes`;
:meth:`RelaySession.next_sends`), and turns Relay frames into outcomes for our
runs (:meth:`RelaySession.on_frame`), matching ``accepted`` and null-event
``error`` frames to submissions as relay-protocol.md §6 decides.

Lifecycle of a submission: queued → pending (sent, on this connection) →
accepted (has an event id) → terminal (reply, error, refusal or abandon). A ref
is *active* until terminal; while active, submitting it again is a no-op, and
after that it may be submitted again as a retry.

What to send in answer to a frame -- the ``pong`` to a ``ping``, the ``discover``
after a connection opens or an error whose policy says to look again -- is decided
here too and waits in an outbox: after :meth:`RelaySession.on_connect` and every
:meth:`RelaySession.on_frame`, the caller sends :meth:`RelaySession.data_to_send`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from . import correlation
from .codes import ErrorCode
from .correlation import Correlated
from .frames import (
    Accepted,
    AgentInfo,
    Agents,
    AppToRelayFrame,
    Discover,
    Error,
    Ping,
    Pong,
    RelayToAppFrame,
    Reply,
    Token,
)
from .outcomes import (
    AgentsDiscovered,
    EventFailed,
    Outcome,
    PingReceived,
    PongReceived,
    RefState,
    Requeued,
    SendBatch,
    SessionCounts,
    Submission,
    SubmissionRejected,
    UnhandledFrame,
)
from .pacing import STARTER, Pacer, PlanLimits
from .payload import check_payload_size
from .policy import policy_for
from .submissions import SubmissionBook


class RelaySession:
    """Queue, gate, pacing and correlation for one app's Relay traffic.

    ``clock`` returns seconds on a monotonic scale. ``window_margin_s`` widens
    the pacing windows (see :mod:`relaybridge.protocol.pacing`). After a
    ``RATE_LIMITED`` refusal nothing is sent for ``rate_limited_hold_s``: Relay's
    limit is per app, so the next events would be refused too. The last
    ``remember_finished`` finished event ids are kept to recognise late frames.
    The session starts disconnected: call :meth:`on_connect` first.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        limits: PlanLimits = STARTER,
        window_margin_s: float = 1.0,
        rate_limited_hold_s: float = 10.0,
        remember_finished: int = 10_000,
        resend_grace_s: float = 10.0,
    ) -> None:
        self._clock = clock
        self._limits = limits
        self._pacer = Pacer(limits, window_margin_s)
        self._rate_limited_hold_s = rate_limited_hold_s
        self._book = SubmissionBook(remember_finished)
        self._connected = False
        self._hold_until: float | None = None
        self._agents: dict[str, AgentInfo] = {}
        self._unavailable: set[str] = set()
        #: Frames to send in answer, oldest first (see :meth:`data_to_send`).
        self._outbox: list[AppToRelayFrame] = []
        self._resend_grace_s = resend_grace_s
        #: Answers whose connection closed, by ref: their event id and the moment
        #: (None until a connection is up) past which they count as lost.
        self._unheard: dict[str, tuple[str | None, float | None]] = {}
        #: Runs an earlier worker left that were heard from here, so not watched again.
        self._heard: set[str] = set()

    # --- input from the caller ------------------------------------------------

    def submit(self, submission: Submission) -> bool:
        """Queue ``submission``; ``False`` (and nothing changes) if its ref is active.

        Raises :class:`PayloadTooLarge` rather than let Relay refuse the event.
        """
        if submission.ref in self._book.active:
            return False
        check_payload_size(submission.payload)
        self._book.add(submission)
        return True

    def next_sends(self) -> SendBatch:
        """What to send now. Returned submissions count as sent at once.

        Send their events in the order given, on the current connection. A send
        that fails means the connection is gone: call :meth:`on_disconnect`,
        which puts them back in the queue.
        """
        book = self._book
        now = self._clock()
        if not self._connected or not book.queue:
            return SendBatch((), None)
        if self._hold_until is not None:
            if now < self._hold_until:
                return SendBatch((), self._hold_until)
            self._hold_until = None
        cap = self._limits.max_in_flight
        in_flight = book.in_flight  # kept here: the queue is compacted only after the loop
        sent: list[Submission] = []
        wake_at: float | None = None
        # Round-robin by asker; an entry whose thread is busy is passed over, and
        # later entries of other threads may go (relay-protocol.md §6.2).
        for entry in book.queue.turns(lambda e: e.sub.pair in book.gate):
            if cap is not None and in_flight >= cap:
                break  # the cap and the windows bind every thread and asker alike
            wake_at = self._pacer.free_at(now)
            if wake_at is not None:
                break
            self._pacer.record(now)
            book.mark_sent(entry)
            sent.append(entry.sub)
            in_flight += 1
        if sent:
            book.compact_queue()
        return SendBatch(tuple(sent), wake_at)

    def on_connect(self) -> None:
        """A new connection is up: the first frame to send is a ``discover``."""
        if self._connected:
            self.on_disconnect()
        self._connected = True
        self._outbox.append(Discover())
        due = self._clock() + self._resend_grace_s
        for ref, (event_id, _deadline) in self._unheard.items():
            self._unheard[ref] = (event_id, due)

    def data_to_send(self) -> list[AppToRelayFrame]:
        """The frames to send now, in this order, in answer to what came in.

        Call after :meth:`on_connect` and after every :meth:`on_frame`; each frame is
        returned once. (Events go out through :meth:`next_sends`, which paces them.)
        """
        frames, self._outbox = self._outbox, []
        return frames

    def on_disconnect(self) -> list[Requeued]:
        """The connection is gone. Sent-but-unaccepted submissions go back to the queue.

        Each keeps its place in its asker's lane, ahead of anything that asker
        submitted after it. Accepted events stay known (their frames may still
        arrive on the next connection) and so do the pacing windows.
        """
        self._connected = False
        self._outbox.clear()  # answers meant for a connection that is gone
        # Accepted answers were carried by the connection that closed: unless a frame
        # of theirs comes within the grace after the next connection, they are lost.
        for entry in self._book.events.values():
            self._unheard[entry.sub.ref] = (entry.event_id, None)
        # The grace of answers still watched starts again with the next connection,
        # and answers heard from before must be heard from again after it.
        for ref, (event_id, _due) in self._unheard.items():
            self._unheard[ref] = (event_id, None)
        self._heard.clear()
        return [Requeued(ref) for ref in self._book.requeue_pending()]

    def abandon(self, ref: str) -> bool:
        """Stop tracking ``ref`` (watchdog, user stop, ended elsewhere).

        Its gate and in-flight slot are released; frames that still come for it
        are reported as :class:`LateFrame`. ``False`` if the ref was not active.
        """
        self._unheard.pop(ref, None)
        return self._book.abandon(ref)

    def watch_unheard(self, ref: str, event_id: str) -> bool:
        """Watch an answer an earlier worker left accepted (known from the ledger).

        Like an answer of a closed connection: unless a frame of ``event_id`` comes
        within the grace, :meth:`lost_answers` reports it. ``False`` if the ref is
        carried here, watched already, or was heard from since.
        """
        if ref in self._book.active or ref in self._unheard or ref in self._heard:
            return False
        due = self._clock() + self._resend_grace_s if self._connected else None
        self._unheard[ref] = (event_id, due)
        return True

    def lost_answers(self) -> list[str]:
        """Answers past their grace without a frame: lost with their connection.

        Each is reported once and no longer watched; the caller sends it again or
        fails it (:func:`relaybridge.protocol.policy.decide_retry` with
        ``CONNECTION_LOST``), abandoning the old event first.
        """
        now = self._clock()
        lost = [ref for ref, (_e, due) in self._unheard.items() if due is not None and due <= now]
        for ref in lost:
            del self._unheard[ref]
        return lost

    def unheard_due(self) -> float | None:
        """When the next watched answer's grace ends (None: none is running)."""
        dues = [due for _e, due in self._unheard.values() if due is not None]
        return min(dues) if dues else None

    def unheard_refs(self) -> list[str]:
        """Answers whose connection closed and that have not been heard from since."""
        return list(self._unheard)

    def _heard_from(self, event_id: str) -> None:
        """A frame of ``event_id`` came: the answer it belongs to is not lost."""
        for ref, (watched_event, _due) in self._unheard.items():
            if watched_event == event_id:
                del self._unheard[ref]
                if ref not in self._book.active:
                    # Left by an earlier worker: heard from here, so never watched again.
                    if len(self._heard) >= 10_000:
                        self._heard.clear()
                    self._heard.add(ref)
                return

    def recall_sends(self, sent: Iterable[float]) -> None:
        """Events sent to Relay before this session (times on its clock), by a worker
        that held the connection before: Relay's windows still count them, so the
        pacing does too. Call before the first send."""
        self._pacer.recall(sent)

    def set_limits(self, limits: PlanLimits) -> None:
        """Change the plan limits (e.g. lift them for a benchmark)."""
        self._limits = limits
        self._pacer.set_limits(limits)

    # --- frames from Relay ----------------------------------------------------

    def on_frame(self, frame: RelayToAppFrame) -> list[Outcome]:
        """What a Relay → app frame means for our submissions."""
        match frame:
            case Accepted():
                return self._after(correlation.on_accepted(self._book, frame))
            case Error(event_id=None):
                return self._after(correlation.on_refusal(self._book, frame))
            case (
                Token(event_id=str() as event_id)
                | Reply(event_id=str() as event_id)
                | Error(event_id=str() as event_id)
            ):
                if self._unheard:
                    self._heard_from(event_id)
                return self._after(correlation.on_event_frame(self._book, frame, event_id))
            case Agents():
                self._agents = {info.agent_id: info for info in frame.agents}
                self._unavailable.clear()  # discovery is the fresh word on who is reachable
                return [AgentsDiscovered(frame.agents)]
            case Ping():
                self._outbox.append(Pong())
                return [PingReceived()]
            case Pong():
                return [PongReceived()]
            case _:
                return [UnhandledFrame(frame)]

    def _after(self, correlated: Correlated) -> list[Outcome]:
        outcome, ended = correlated
        if ended is not None and isinstance(outcome, SubmissionRejected | EventFailed):
            policy = policy_for(outcome.code)
            if policy.mark_agent_unavailable:
                self._unavailable.add(ended.agent_id)
            if policy.rediscover and self._connected:
                self._outbox.append(Discover())
            if isinstance(outcome, SubmissionRejected) and outcome.code == ErrorCode.RATE_LIMITED:
                self._hold_until = self._clock() + self._rate_limited_hold_s
        return [outcome]

    # --- introspection --------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def limits(self) -> PlanLimits:
        return self._limits

    @property
    def hold_until(self) -> float | None:
        """Until when sends are held after a ``RATE_LIMITED`` refusal."""
        return self._hold_until

    @property
    def known_agents(self) -> Mapping[str, AgentInfo]:
        """The agents of the last discovery, by id."""
        return dict(self._agents)

    @property
    def unavailable_agents(self) -> frozenset[str]:
        """Agents refused with NOT_ALLOWED since the last discovery."""
        return frozenset(self._unavailable)

    def counts(self) -> SessionCounts:
        return self._book.counts()

    def state_of(self, ref: str) -> RefState | None:
        """Where the active ``ref`` is; ``None`` once terminal (or never seen)."""
        entry = self._book.active.get(ref)
        return entry.state if entry is not None else None

    def event_id_of(self, ref: str) -> str | None:
        entry = self._book.active.get(ref)
        return entry.event_id if entry is not None else None

    def queued_refs(self) -> list[str]:
        """Refs waiting to be sent, in submission order (not the order they will go)."""
        return [entry.sub.ref for entry in self._book.queue.entries()]

    def queued_askers(self) -> list[str | None]:
        """The askers with submissions waiting, the one whose turn is next first."""
        return self._book.queue.lanes()

    def in_flight_refs(self) -> list[str]:
        """Refs sent and not yet terminal, oldest submission first."""
        return self._book.in_flight_refs()
