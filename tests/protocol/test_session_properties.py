"""Property test: arbitrary traffic never breaks the session's invariants.

A small model of Relay answers what the session sends (in order, as Relay
promises) but may also misbehave: misleading session keys, refusals without an
agent, frames for unknown or finished events, disconnects at any moment. After
every step the session must keep its promises:

- never more in flight than the cap, never two in flight on one (agent, thread);
- each attempt of a ref is accepted at most once and ends at most once;
- no ref is lost: every submitted ref is queued, pending, accepted or ended;
- tokens and replies only ever reach refs that are accepted and not ended.
"""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from relaybridge.protocol import (
    Accepted,
    Error,
    EventFailed,
    LateFrame,
    Outcome,
    Ping,
    PlanLimits,
    RefState,
    RelaySession,
    Reply,
    ReplyReceived,
    Requeued,
    Submission,
    SubmissionAccepted,
    SubmissionRejected,
    Token,
    TokenReceived,
    UnknownEvent,
)

from .support import FakeClock

REFS = st.sampled_from([f"r{n}" for n in range(8)])
AGENTS = st.sampled_from(["athena", "klyve"])
THREADS = st.sampled_from(["t1", "t2", "t:3"])
ASKERS = st.none() | st.sampled_from(["alice", "bob"])
CODES = st.sampled_from(["AGENT_OFFLINE", "RATE_LIMITED", "NOT_ALLOWED", "AGENT_ERROR", "X"])
TERMINAL = (SubmissionRejected, ReplyReceived, EventFailed)


class SessionMachine(RuleBasedStateMachine):
    @initialize(
        cap=st.none() | st.integers(1, 4),
        per_minute=st.none() | st.integers(1, 6),
        per_hour=st.none() | st.integers(1, 12),
    )
    def start(self, cap: int | None, per_minute: int | None, per_hour: int | None) -> None:
        self.clock = FakeClock(0.0)
        self.limits = PlanLimits(per_minute, per_hour, cap)
        self.session = RelaySession(clock=self.clock, limits=self.limits, rate_limited_hold_s=5)
        self.session.on_connect()
        self.active: dict[str, Submission] = {}  # what the model believes is active
        self.accepted_count: Counter[str] = Counter()
        self.ended_count: Counter[str] = Counter()
        self.relay_fifo: list[Submission] = []  # sent on this connection, unanswered
        self.event_ids: list[str] = []
        self.accepted_refs: dict[str, str] = {}  # event id → ref, for accepted attempts
        self.minted = 0

    # --- the caller ---------------------------------------------------------

    @rule(ref=REFS, agent=AGENTS, thread=THREADS, asker=ASKERS)
    def submit(self, ref: str, agent: str, thread: str, asker: str | None = None) -> None:
        submission = Submission(ref, agent, thread, {"message": ref}, asker)
        queued = self.session.submit(submission)
        assert queued == (ref not in self.active)
        if queued:
            self.active[ref] = submission
            self.accepted_count[ref] = 0
            self.ended_count[ref] = 0

    @rule(ref=REFS, agent=AGENTS, thread=THREADS, asker=ASKERS)
    def submit_and_send(self, ref: str, agent: str, thread: str, asker: str | None) -> None:
        self.submit(ref, agent, thread, asker)
        self.send()

    @rule()
    def send(self) -> None:
        batch = self.session.next_sends()
        for submission in batch.send:
            assert self.active.get(submission.ref) == submission
        self.relay_fifo.extend(batch.send)
        if batch.wake_at is not None:
            assert batch.wake_at > self.clock.now

    @rule(seconds=st.sampled_from([0.5, 5, 30, 61, 3_601]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(ref=REFS)
    def abandon(self, ref: str) -> None:
        assert self.session.abandon(ref) == (ref in self.active)
        self.active.pop(ref, None)

    @rule()
    def reconnect(self) -> None:
        pending = [r for r in self.active if self.session.state_of(r) is RefState.PENDING]
        requeued = self.session.on_disconnect()
        assert all(isinstance(outcome, Requeued) for outcome in requeued)
        assert sorted(outcome.ref for outcome in requeued) == sorted(pending)
        assert all(self.session.state_of(ref) is RefState.QUEUED for ref in pending)
        self.relay_fifo.clear()
        self.session.on_connect()

    # --- Relay --------------------------------------------------------------

    @rule(honest_key=st.booleans())
    def relay_accepts(self, honest_key: bool) -> None:
        if not self.relay_fifo:
            return
        submission = self.relay_fifo.pop(0)
        self.minted += 1
        event_id = f"evt_{self.minted}"
        self.event_ids.append(event_id)
        thread = submission.thread_id if honest_key else "elsewhere"
        key = f"relay:{submission.agent_id}:portal:{thread}"
        self.feed(Accepted(event_id, submission.agent_id, key))

    @rule(code=CODES, name_agent=st.booleans())
    def relay_refuses(self, code: str, name_agent: bool) -> None:
        if not self.relay_fifo:
            return
        submission = self.relay_fifo.pop(0)
        self.feed(Error(None, submission.agent_id if name_agent else None, "no", code))

    @rule(data=st.data(), kind=st.sampled_from(["token", "reply", "error"]))
    def relay_event_frame(self, data: st.DataObject, kind: str) -> None:
        live = [self.session.event_id_of(ref) for ref in self.session.in_flight_refs()]
        live_ids = [event_id for event_id in live if event_id is not None]
        if live_ids and data.draw(st.integers(0, 3)) > 0:
            event_id = data.draw(st.sampled_from(live_ids))
        else:
            event_id = data.draw(st.sampled_from([*self.event_ids, "evt_unknown"]))
        frame: Token | Reply | Error
        if kind == "token":
            frame = Token(event_id, "athena", "x")
        elif kind == "reply":
            frame = Reply(event_id, "athena", "t1", "done")
        else:
            frame = Error(event_id, "athena", "boom", data.draw(CODES))
        self.feed(frame)

    @rule(agent=AGENTS, thread=THREADS)
    def relay_stray_accepted(self, agent: str, thread: str) -> None:
        # Relay answering something we never sent would desync a naive FIFO.
        self.minted += 1
        self.event_ids.append(f"evt_{self.minted}")
        self.feed(Accepted(f"evt_{self.minted}", agent, f"relay:{agent}:portal:{thread}"))

    @rule(agent=st.none() | AGENTS)
    def relay_unprompted_refusal(self, agent: str | None) -> None:
        self.feed(Error(None, agent, "stray", "AGENT_OFFLINE"))

    @rule()
    def relay_pings(self) -> None:
        self.feed(Ping())

    def teardown(self) -> None:
        """Liveness: once Relay answers honestly, every active ref ends."""
        if not hasattr(self, "session"):
            return
        self.reconnect()
        for _ in range(500):
            if not self.active:
                return
            batch = self.session.next_sends()
            self.relay_fifo.extend(batch.send)
            while self.relay_accepts_honestly():
                pass
            for ref in self.session.in_flight_refs():
                event_id = self.session.event_id_of(ref)
                if event_id is not None:
                    self.feed(Reply(event_id, "athena", "t1", "done"))
            if batch.wake_at is not None:
                self.clock.now = batch.wake_at
        raise AssertionError(f"refs never ended: {sorted(self.active)}")

    def relay_accepts_honestly(self) -> bool:
        had = bool(self.relay_fifo)
        self.relay_accepts(honest_key=True)
        return had

    # --- checking -----------------------------------------------------------

    def feed(self, frame: Accepted | Token | Reply | Error | Ping) -> None:
        for outcome in self.session.on_frame(frame):
            self.check(outcome)

    def check(self, outcome: Outcome) -> None:
        if isinstance(outcome, SubmissionAccepted):
            assert outcome.ref in self.active
            self.accepted_count[outcome.ref] += 1
            assert self.accepted_count[outcome.ref] == 1
            self.accepted_refs[outcome.event_id] = outcome.ref
        elif isinstance(outcome, TokenReceived):
            assert outcome.ref in self.active
            assert self.session.state_of(outcome.ref) is RefState.ACCEPTED
            assert self.accepted_refs[outcome.event_id] == outcome.ref
        elif isinstance(outcome, TERMINAL):
            assert outcome.ref in self.active
            self.ended_count[outcome.ref] += 1
            assert self.ended_count[outcome.ref] == 1
            if not isinstance(outcome, SubmissionRejected):
                assert self.accepted_refs[outcome.event_id] == outcome.ref
            del self.active[outcome.ref]
        elif isinstance(outcome, LateFrame):
            # A late frame is never for the live attempt of an accepted ref.
            event_id = getattr(outcome.frame, "event_id", None)
            if event_id is not None and outcome.ref in self.active:
                assert self.session.event_id_of(outcome.ref) != event_id
        elif isinstance(outcome, UnknownEvent):
            event_id = outcome.frame.event_id
            assert (
                event_id is None
                or event_id not in self.accepted_refs
                or isinstance(outcome.frame, Accepted)
            )

    @invariant()
    def caps_and_gates_hold(self) -> None:
        in_flight = self.session.in_flight_refs()
        if self.limits.max_in_flight is not None:
            assert len(in_flight) <= self.limits.max_in_flight
        pairs = [self.active[ref].pair for ref in in_flight]
        assert len(pairs) == len(set(pairs))
        counts = self.session.counts()
        assert counts.in_flight == len(in_flight)

    @invariant()
    def no_ref_is_lost(self) -> None:
        for ref in [f"r{n}" for n in range(8)]:
            state = self.session.state_of(ref)
            assert (state is not None) == (ref in self.active)
        queued = self.session.queued_refs()
        in_flight = self.session.in_flight_refs()
        assert sorted(queued + in_flight) == sorted(self.active)
        askers = self.session.queued_askers()
        assert len(askers) == len(set(askers))
        assert set(askers) == {self.active[ref].asker for ref in queued}


# too_slow measures the machine, not the session: under coverage's tracing on a busy
# machine generation falls below Hypothesis's speed bar although nothing is wrong.
SessionMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=60, suppress_health_check=[HealthCheck.too_slow]
)
test_session_machine = SessionMachine.TestCase
