"""Answers lost with their connection: watched for a grace, then reported once."""

from __future__ import annotations

from relaybridge.protocol import ErrorCode, LateFrame, RelaySession, TokenReceived
from relaybridge.protocol.policy import decide_retry, describe_decision

from .support import FakeClock, accepted, make_session, reply, sub, token


def accepted_run(session: RelaySession, ref: str, event_id: str, thread: str = "task-1") -> None:
    session.submit(sub(ref, thread=thread))
    session.next_sends()
    session.on_frame(accepted(event_id, thread=thread))


def test_an_accepted_answer_whose_connection_closed_is_lost_after_the_grace() -> None:
    session, clock = make_session(resend_grace_s=10.0)
    accepted_run(session, "r1", "evt_1")
    session.on_disconnect()
    assert session.unheard_refs() == ["r1"]
    clock.advance(60)  # no connection: the grace has not begun
    assert session.lost_answers() == [] and session.unheard_due() is None
    session.on_connect()
    assert session.unheard_due() == clock.now + 10.0
    clock.advance(9.9)
    assert session.lost_answers() == []
    clock.advance(0.1)
    assert session.lost_answers() == ["r1"]
    assert session.lost_answers() == []  # reported once
    assert session.unheard_refs() == []


def test_a_frame_within_the_grace_means_the_answer_was_not_lost() -> None:
    session, clock = make_session(resend_grace_s=10.0)
    accepted_run(session, "r1", "evt_1")
    accepted_run(session, "r2", "evt_2", thread="task-2")
    session.on_disconnect()
    session.on_connect()
    assert session.on_frame(token("evt_1", "Hi")) == [TokenReceived("r1", "evt_1", "Hi")]
    clock.advance(10)
    assert session.lost_answers() == ["r2"]


def test_abandoning_the_lost_event_drops_its_late_frames_and_frees_the_thread() -> None:
    session, clock = make_session(resend_grace_s=1.0)
    accepted_run(session, "r1", "evt_1")
    session.on_disconnect()
    session.on_connect()
    clock.advance(1)
    assert session.lost_answers() == ["r1"]
    session.abandon("r1")
    # The same run again (a new attempt) may go at once: the thread is free.
    assert session.submit(sub("r1"))
    assert [s.ref for s in session.next_sends().send] == ["r1"]
    session.on_frame(accepted("evt_2"))
    late = reply("evt_1", "old")
    assert session.on_frame(late) == [LateFrame("r1", late)]
    # A late frame of the old event does not count as hearing from the new one.
    session.on_disconnect()
    session.on_connect()
    session.on_frame(token("evt_1", "old"))
    clock.advance(1)
    assert session.lost_answers() == ["r1"]


def test_answers_an_earlier_worker_left_are_watched_from_the_ledger() -> None:
    clock = FakeClock()
    session = RelaySession(clock=clock, resend_grace_s=5.0)
    assert session.watch_unheard("r1", "evt_1")
    assert session.watch_unheard("r2", "evt_2")
    assert not session.watch_unheard("r1", "evt_1")  # watched already
    session.on_connect()
    session.on_frame(token("evt_2", "still here"))  # heard: an UnknownEvent to adopt
    clock.advance(5)
    assert session.lost_answers() == ["r1"]
    assert not session.watch_unheard("r2", "evt_2")  # heard from, never watched again


def test_an_answer_carried_here_is_not_watched_from_the_ledger() -> None:
    session, _ = make_session()
    accepted_run(session, "r1", "evt_1")
    assert not session.watch_unheard("r1", "evt_1")


def test_the_resend_decision_follows_the_setting() -> None:
    first = decide_retry(ErrorCode.CONNECTION_LOST, 0, max_retries=2)
    assert first.retry and first.delay_s == 0.0 and first.retry_number == 1
    assert decide_retry(ErrorCode.CONNECTION_LOST, 1, max_retries=2).retry
    assert not decide_retry(ErrorCode.CONNECTION_LOST, 2, max_retries=2).retry
    assert not decide_retry(ErrorCode.CONNECTION_LOST, 0, max_retries=0).retry
    assert decide_retry(ErrorCode.CONNECTION_LOST, 4, max_retries=5).delay_s == 0.0
    message = describe_decision(first, agent="Athena")
    assert message == "Connection to Relay was lost — asking Athena again"


def test_a_ledger_answer_heard_from_is_watched_again_after_the_next_disconnect() -> None:
    clock = FakeClock()
    session = RelaySession(clock=clock, resend_grace_s=5.0)
    session.on_connect()
    assert session.watch_unheard("r1", "evt_1")
    session.on_frame(token("evt_1", "still here"))
    assert not session.watch_unheard("r1", "evt_1")
    session.on_disconnect()
    clock.advance(30)
    session.on_connect()
    assert session.watch_unheard("r1", "evt_1")  # read from the ledger again
    clock.advance(5)
    assert session.lost_answers() == ["r1"]


def test_the_grace_starts_again_with_each_connection() -> None:
    session, clock = make_session(resend_grace_s=5.0)
    accepted_run(session, "r1", "evt_1")
    session.on_disconnect()
    session.on_connect()
    clock.advance(4)
    session.on_disconnect()  # down again before the grace ended
    clock.advance(10)
    assert session.lost_answers() == []
    session.on_connect()
    clock.advance(4.9)
    assert session.lost_answers() == []
    clock.advance(0.1)
    assert session.lost_answers() == ["r1"]
