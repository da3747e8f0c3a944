"""The session state machine, driven by a fake clock and hand-written Relay frames."""

from __future__ import annotations

import pytest

from relaybridge.protocol import (
    SCALE,
    UNLIMITED,
    Accepted,
    AgentInfo,
    Agents,
    AgentsDiscovered,
    ConnectionFailed,
    Discover,
    EventFailed,
    LateFrame,
    PayloadTooLarge,
    Ping,
    PingReceived,
    PlanLimits,
    Pong,
    PongReceived,
    RefState,
    RelaySession,
    RelayToAppFrame,
    ReplyReceived,
    Requeued,
    SessionCounts,
    SubmissionAccepted,
    SubmissionRejected,
    TokenReceived,
    UnhandledFrame,
    Unknown,
    UnknownEvent,
)

from .support import FakeClock, accepted, error, make_session, reply, sub, token


def refs(session: RelaySession) -> list[str]:
    return [s.ref for s in session.next_sends().send]


# --- basics ---------------------------------------------------------------------


def test_a_full_lifecycle() -> None:
    session, _ = make_session()
    assert session.submit(sub("r1"))
    assert session.state_of("r1") is RefState.QUEUED
    batch = session.next_sends()
    assert [s.ref for s in batch.send] == ["r1"] and batch.wake_at is None
    assert batch.send[0].to_event().agent_id == "athena"
    assert session.state_of("r1") is RefState.PENDING
    assert session.on_frame(accepted("evt_1")) == [SubmissionAccepted("r1", "evt_1")]
    assert session.event_id_of("r1") == "evt_1"
    assert session.on_frame(token("evt_1", "Hel")) == [TokenReceived("r1", "evt_1", "Hel")]
    done = reply("evt_1", "Hello")
    assert session.on_frame(done) == [ReplyReceived("r1", "evt_1", done)]
    assert session.state_of("r1") is None
    assert session.counts() == SessionCounts(0, 0, 0)


def test_nothing_is_sent_while_disconnected() -> None:
    session = RelaySession(clock=FakeClock())
    session.submit(sub("r1"))
    assert session.next_sends().send == ()
    session.on_connect()
    assert session.data_to_send() == [Discover()]
    assert session.data_to_send() == []  # each frame is handed out once
    assert session.connected
    assert refs(session) == ["r1"]


def test_submitting_an_active_ref_is_a_no_op() -> None:
    session, _ = make_session()
    assert session.submit(sub("r1"))
    assert not session.submit(sub("r1", thread="other"))
    assert refs(session) == ["r1"]
    assert not session.submit(sub("r1"))  # still active while in flight
    session.on_frame(accepted("e1"))
    session.on_frame(reply("e1"))
    assert session.submit(sub("r1"))  # terminal: a retry may submit it again
    assert refs(session) == ["r1"]


def test_oversized_payloads_are_refused_before_queueing() -> None:
    session, _ = make_session()
    with pytest.raises(PayloadTooLarge):
        session.submit(sub("big", message="x" * 70_000))
    assert session.counts() == SessionCounts(0, 0, 0)


# --- correlation (§6.1) ------------------------------------------------------------


def test_fifo_correlation_with_interleaved_tokens() -> None:
    session, _ = make_session()
    for ref, agent, thread in [("a", "athena", "t1"), ("b", "athena", "t2"), ("c", "klyve", "t1")]:
        session.submit(sub(ref, agent, thread))
    assert refs(session) == ["a", "b", "c"]
    frames: list[RelayToAppFrame] = [
        accepted("e1", "athena", "t1"),
        token("e1", "one "),
        accepted("e2", "athena", "t2"),
        token("e1", "two "),
        token("e2", "x"),
        accepted("e3", "klyve", "t1"),
        token("e3", "k", agent="klyve"),
        reply("e1", "one two", thread="t1"),
        token("e2", "y"),
    ]
    outcomes = [o for f in frames for o in session.on_frame(f)]
    assert [o for o in outcomes if isinstance(o, SubmissionAccepted)] == [
        SubmissionAccepted("a", "e1"),
        SubmissionAccepted("b", "e2"),
        SubmissionAccepted("c", "e3"),
    ]
    streamed = [(o.ref, o.text) for o in outcomes if isinstance(o, TokenReceived)]
    assert streamed == [("a", "one "), ("a", "two "), ("b", "x"), ("c", "k"), ("b", "y")]
    assert isinstance(outcomes[7], ReplyReceived) and outcomes[7].ref == "a"
    assert session.in_flight_refs() == ["b", "c"]


def test_accepted_matches_by_session_key_before_the_head() -> None:
    session, _ = make_session()
    session.submit(sub("a", thread="t1"))
    session.submit(sub("b", thread="t2"))
    refs(session)
    # Relay answered the second event first: the session key says which.
    assert session.on_frame(accepted("e2", thread="t2")) == [SubmissionAccepted("b", "e2")]
    assert session.on_frame(accepted("e1", thread="t1")) == [SubmissionAccepted("a", "e1")]


@pytest.mark.parametrize(
    "session_key", ["relay:zeus:portal:nowhere", "garbage", "relay:athena:portal:t-unknown"]
)
def test_accepted_without_a_matching_key_takes_the_head(session_key: str) -> None:
    session, _ = make_session()
    session.submit(sub("a", thread="t1"))
    session.submit(sub("b", thread="t2"))
    refs(session)
    frame = Accepted("e9", "athena", session_key)
    assert session.on_frame(frame) == [SubmissionAccepted("a", "e9")]


def test_session_key_with_colons_in_the_thread() -> None:
    session, _ = make_session()
    session.submit(sub("a", thread="proj:1"))
    session.submit(sub("b", thread="proj:1:sub"))
    refs(session)
    assert session.on_frame(accepted("e", thread="proj:1:sub")) == [SubmissionAccepted("b", "e")]


def test_null_event_errors_match_the_oldest_pending_of_that_agent() -> None:
    session, _ = make_session()
    session.submit(sub("a", "athena", "t1"))
    session.submit(sub("b", "klyve", "t1"))
    session.submit(sub("c", "klyve", "t2"))
    refs(session)
    refusal = error(None, "AGENT_OFFLINE", agent="klyve", text="Agent not connected")
    assert session.on_frame(refusal) == [
        SubmissionRejected("b", "AGENT_OFFLINE", "Agent not connected", refusal)
    ]
    assert session.on_frame(accepted("e1", "athena", "t1")) == [SubmissionAccepted("a", "e1")]
    assert session.on_frame(accepted("e2", "klyve", "t2")) == [SubmissionAccepted("c", "e2")]


def test_null_event_errors_without_an_agent_take_the_head() -> None:
    session, _ = make_session()
    session.submit(sub("a", "athena", "t1"))
    session.submit(sub("b", "klyve", "t1"))
    refs(session)
    refusal = error(None, "INVALID_MESSAGE", agent=None)
    [outcome] = session.on_frame(refusal)
    assert isinstance(outcome, SubmissionRejected) and outcome.ref == "a"


def test_a_refusal_is_terminal_and_releases_the_gate() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    session.submit(sub("b"))
    assert refs(session) == ["a"]
    session.on_frame(error(None, "AGENT_OFFLINE"))
    assert session.state_of("a") is None
    assert refs(session) == ["b"]


def test_connection_level_errors_leave_pending_submissions_alone() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    refs(session)
    bad_token = error(None, "UNAUTHORIZED", agent=None, text="Invalid or revoked token")
    assert session.on_frame(bad_token) == [
        ConnectionFailed("UNAUTHORIZED", "Invalid or revoked token", bad_token)
    ]
    assert session.state_of("a") is RefState.PENDING
    assert session.on_disconnect() == [Requeued("a")]


def test_a_null_event_error_with_nothing_pending_is_about_the_connection() -> None:
    session, _ = make_session()
    frame = error(None, "RATE_LIMITED", agent=None)
    assert session.on_frame(frame) == [ConnectionFailed("RATE_LIMITED", frame.error, frame)]


def test_frames_for_unknown_events() -> None:
    session, _ = make_session()
    stray_accept = accepted("e0")
    assert session.on_frame(stray_accept) == [UnknownEvent(stray_accept)]
    for frame in (token("nope", "x"), reply("nope"), error("nope", "AGENT_ERROR")):
        assert session.on_frame(frame) == [UnknownEvent(frame)]


def test_an_event_error_is_terminal_with_a_normalized_code() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    refs(session)
    session.on_frame(accepted("e1"))
    failure = error("e1", "AGENT_NOT_ALLOWED", text="not allowed")
    assert session.on_frame(failure) == [
        EventFailed("a", "e1", "NOT_ALLOWED", "not allowed", failure)
    ]
    assert session.unavailable_agents == {"athena"}


def test_frames_after_the_terminal_frame_are_late_never_delivered_twice() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    refs(session)
    session.on_frame(accepted("e1"))
    session.on_frame(reply("e1", "final"))
    for frame in (token("e1", "x"), reply("e1", "again"), error("e1", "AGENT_ERROR")):
        assert session.on_frame(frame) == [LateFrame("a", frame)]
    repeat = accepted("e1")
    assert session.on_frame(repeat) == [LateFrame("a", repeat)]


def test_a_repeated_accepted_does_not_consume_a_pending_entry() -> None:
    session, _ = make_session()
    session.submit(sub("a", thread="t1"))
    session.submit(sub("b", thread="t2"))
    refs(session)
    session.on_frame(accepted("e1", thread="t1"))
    again = accepted("e1", thread="t1")
    assert session.on_frame(again) == [LateFrame("a", again)]
    assert session.on_frame(accepted("e2", thread="t2")) == [SubmissionAccepted("b", "e2")]


def test_finished_event_ids_are_remembered_within_a_bound() -> None:
    session, _ = make_session(remember_finished=2, limits=UNLIMITED)
    for n in range(3):
        session.submit(sub(f"r{n}", thread=f"t{n}"))
    refs(session)
    for n in range(3):
        session.on_frame(accepted(f"e{n}", thread=f"t{n}"))
        session.on_frame(reply(f"e{n}"))
    oldest, newest = token("e0", "x"), token("e2", "x")
    assert session.on_frame(oldest) == [UnknownEvent(oldest)]
    assert session.on_frame(newest) == [LateFrame("r2", newest)]


# --- the gate (§6.2), the cap and pacing ---------------------------------------------


def test_one_event_per_agent_and_thread() -> None:
    session, _ = make_session()
    session.submit(sub("a", "athena", "t1"))
    session.submit(sub("b", "athena", "t1"))
    session.submit(sub("c", "athena", "t2"))
    session.submit(sub("d", "klyve", "t1"))
    assert refs(session) == ["a", "c", "d"]  # b waits; it blocks nobody behind it
    assert refs(session) == []
    session.on_frame(accepted("e1", "athena", "t1"))
    assert refs(session) == []  # accepted is not finished
    session.on_frame(reply("e1"))
    assert refs(session) == ["b"]


def test_same_thread_events_keep_their_order() -> None:
    session, _ = make_session()
    for ref in ("a", "b", "c"):
        session.submit(sub(ref))
    sent = []
    for n in range(3):
        [submission] = session.next_sends().send
        sent.append(submission.ref)
        session.on_frame(accepted(f"e{n}"))
        session.on_frame(error(f"e{n}", "AGENT_ERROR"))
    assert sent == ["a", "b", "c"]


def test_in_flight_cap() -> None:
    session, _ = make_session(limits=PlanLimits(None, None, 2))
    for n in range(4):
        session.submit(sub(f"r{n}", thread=f"t{n}"))
    batch = session.next_sends()
    assert [s.ref for s in batch.send] == ["r0", "r1"]
    assert batch.wake_at is None  # the cap is freed by a frame, not by time
    assert session.counts() == SessionCounts(queued=2, pending=2, accepted=0)
    assert session.counts().in_flight == 2
    session.on_frame(accepted("e0", thread="t0"))
    assert refs(session) == []  # accepted still counts as in flight
    session.on_frame(reply("e0", thread="t0"))
    assert refs(session) == ["r2"]


def test_per_minute_pacing_with_exact_wake_times() -> None:
    session, clock = make_session(limits=PlanLimits(3, None, None))
    sent_at = []
    for n in range(3):
        session.submit(sub(f"r{n}", thread=f"t{n}"))
        assert refs(session) == [f"r{n}"]
        sent_at.append(clock.now)
        clock.advance(10)
    session.submit(sub("r3", thread="t3"))
    session.submit(sub("r4", thread="t4"))
    batch = session.next_sends()
    assert batch.send == () and batch.wake_at == sent_at[0] + 60
    clock.now = sent_at[0] + 59.999
    assert session.next_sends().wake_at == sent_at[0] + 60
    clock.now = sent_at[0] + 60
    batch = session.next_sends()
    assert [s.ref for s in batch.send] == ["r3"]
    assert batch.wake_at == sent_at[1] + 60


def test_per_hour_pacing_and_the_margin() -> None:
    session, clock = make_session(limits=PlanLimits(None, 2, None), margin=1.0)
    for n in range(3):
        session.submit(sub(f"r{n}", thread=f"t{n}"))
    start = clock.now
    batch = session.next_sends()
    assert len(batch.send) == 2 and batch.wake_at == start + 3_600 + 1.0
    clock.now = start + 3_601
    assert refs(session) == ["r2"]


def test_starter_is_the_default_and_paces_a_burst() -> None:
    session = RelaySession(clock=FakeClock(0.0), window_margin_s=0.0)
    session.on_connect()
    for n in range(70):
        session.submit(sub(f"r{n}", thread=f"t{n}"))
    assert len(refs(session)) == 10  # Starter's in-flight cap binds first
    session.set_limits(PlanLimits(60, 3_600, None))
    batch = session.next_sends()
    assert len(batch.send) == 50 and batch.wake_at == 60.0  # 60 per minute in all


def test_limits_can_be_lifted() -> None:
    session, _ = make_session(limits=SCALE)
    for n in range(500):
        session.submit(sub(f"r{n}", thread=f"t{n}"))
    assert len(refs(session)) == 50
    session.set_limits(UNLIMITED)
    assert session.limits == UNLIMITED
    assert len(refs(session)) == 450


def test_a_rate_limited_refusal_holds_all_sends() -> None:
    session, clock = make_session(limits=UNLIMITED, rate_limited_hold_s=10.0)
    session.submit(sub("a", thread="t1"))
    refs(session)
    session.submit(sub("b", thread="t2"))
    session.on_frame(error(None, "RATE_LIMITED"))
    assert session.hold_until == clock.now + 10
    assert session.next_sends().wake_at == clock.now + 10
    clock.advance(10)
    assert refs(session) == ["b"]
    assert session.hold_until is None


# --- connections --------------------------------------------------------------------


def test_disconnect_requeues_unaccepted_in_order_and_keeps_accepted() -> None:
    session, _ = make_session()
    for ref, thread in [("a", "t1"), ("b", "t2"), ("c", "t3")]:
        session.submit(sub(ref, thread=thread))
    refs(session)
    session.submit(sub("d", thread="t4"))
    session.on_frame(accepted("e2", thread="t2"))
    assert session.on_disconnect() == [Requeued("a"), Requeued("c")]
    assert session.queued_refs() == ["a", "c", "d"]
    assert session.in_flight_refs() == ["b"]
    assert refs(session) == []  # not connected
    session.on_connect()
    assert session.data_to_send() == [Discover()]
    assert refs(session) == ["a", "c", "d"]
    # The accepted event's frames may still come, on the new connection.
    assert session.on_frame(token("e2", "late")) == [TokenReceived("b", "e2", "late")]
    # The resent events are matched afresh.
    assert session.on_frame(accepted("e1b", thread="t1")) == [SubmissionAccepted("a", "e1b")]


def test_pacing_windows_survive_a_reconnect() -> None:
    session, clock = make_session(limits=PlanLimits(2, None, None))
    session.submit(sub("a", thread="t1"))
    session.submit(sub("b", thread="t2"))
    start = clock.now
    refs(session)
    session.on_disconnect()
    session.on_connect()
    batch = session.next_sends()
    assert batch.send == () and batch.wake_at == start + 60


def test_a_gated_submission_behind_a_requeued_one_stays_behind_it() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    session.submit(sub("b"))
    assert refs(session) == ["a"]
    session.on_disconnect()
    session.on_connect()
    assert refs(session) == ["a"]


def test_connecting_twice_counts_as_a_reconnect() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    refs(session)
    session.on_connect()
    assert session.queued_refs() == ["a"]


# --- abandon --------------------------------------------------------------------------


def test_abandon_a_queued_submission() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    assert session.abandon("a")
    assert not session.abandon("a")
    assert refs(session) == []


def test_abandon_an_accepted_event_releases_its_gate_and_ignores_its_frames() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    session.submit(sub("b"))
    refs(session)
    session.on_frame(accepted("e1"))
    assert session.abandon("a")
    assert refs(session) == ["b"]
    late = reply("e1")
    assert session.on_frame(late) == [LateFrame("a", late)]


def test_abandon_a_pending_submission_keeps_the_fifo_aligned() -> None:
    session, _ = make_session()
    session.submit(sub("a", thread="t1"))
    session.submit(sub("b", thread="t2"))
    refs(session)
    assert session.abandon("a")
    assert session.counts() == SessionCounts(queued=0, pending=1, accepted=0)
    # Relay still answers the abandoned event first. With keys that say nothing,
    # only the FIFO tells them apart: the first answer must not go to b.
    first, second = Accepted("e0", "athena", "?"), Accepted("e1", "athena", "?")
    assert session.on_frame(first) == [LateFrame("a", first)]
    assert session.on_frame(second) == [SubmissionAccepted("b", "e1")]
    stray = token("e0", "x")
    assert session.on_frame(stray) == [LateFrame("a", stray)]


def test_abandoned_pending_refusal_is_late() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    refs(session)
    session.abandon("a")
    refusal = error(None, "AGENT_OFFLINE")
    assert session.on_frame(refusal) == [LateFrame("a", refusal)]
    assert session.on_disconnect() == []


# --- other frames ---------------------------------------------------------------------


def test_discovery_pings_and_unknown_frames() -> None:
    session, _ = make_session()
    agents = (AgentInfo("athena", "Athena", "Personal EA"),)
    session.submit(sub("a"))
    refs(session)
    session.on_frame(error(None, "NOT_ALLOWED"))
    assert session.unavailable_agents == {"athena"}
    assert session.on_frame(Agents(agents)) == [AgentsDiscovered(agents)]
    assert session.unavailable_agents == frozenset()
    assert session.known_agents == {"athena": agents[0]}
    session.data_to_send()  # the connection's discover
    assert session.on_frame(Ping()) == [PingReceived()]
    assert session.data_to_send() == [Pong()]
    assert session.on_frame(Pong()) == [PongReceived()]
    odd = Unknown("typing", {"event_id": "e"})
    assert session.on_frame(odd) == [UnhandledFrame(odd)]


def test_an_error_whose_policy_says_so_asks_for_a_fresh_discovery() -> None:
    session, _ = make_session()
    session.submit(sub("a"))
    refs(session)
    session.data_to_send()  # the connection's first discover
    [outcome] = session.on_frame(error(None, "AGENT_NOT_FOUND"))
    assert isinstance(outcome, SubmissionRejected)
    assert session.data_to_send() == [Discover()]


def test_answers_meant_for_a_dropped_connection_are_not_sent_on_the_next() -> None:
    session, _ = make_session()
    session.on_frame(Ping())
    session.on_disconnect()
    session.on_connect()
    assert session.data_to_send() == [Discover()]
