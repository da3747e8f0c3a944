"""The session's queue takes turns across the people asking (relaybridge.protocol.lanes)."""

from __future__ import annotations

from relaybridge.protocol import UNLIMITED, PlanLimits, RelaySession, Requeued, Submission

from .support import accepted, make_session, reply

#: One event in flight at a time and no windows: every send waits for a free slot.
ONE_AT_A_TIME = PlanLimits(events_per_minute=None, events_per_hour=None, max_in_flight=1)


def ask(
    ref: str, asker: str | None, thread: str | None = None, agent: str = "athena"
) -> Submission:
    """A submission of ``asker``'s, on a thread of its own unless one is given."""
    return Submission(ref, agent, thread or f"task-{ref}", {"message": ref}, asker)


def drain_one_at_a_time(session: RelaySession) -> list[str]:
    """Send and finish the queue one event at a time; the refs in the order they went."""
    order: list[str] = []
    while True:
        batch = session.next_sends()
        if not batch.send:
            return order
        (sent,) = batch.send
        order.append(sent.ref)
        event_id = f"evt_{len(order)}"
        session.on_frame(accepted(event_id, sent.agent_id, sent.thread_id))
        session.on_frame(reply(event_id, agent=sent.agent_id, thread=sent.thread_id))


def submit_all(session: RelaySession, *submissions: Submission) -> None:
    for submission in submissions:
        assert session.submit(submission)


def test_a_burst_delays_only_its_asker() -> None:
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(session, *(ask(f"a{n}", "alice") for n in range(25)), ask("b0", "bob"))
    order = drain_one_at_a_time(session)
    # Bob waits behind one of Alice's sends, not behind her whole burst.
    assert order[:3] == ["a0", "b0", "a1"]
    assert order[3:] == [f"a{n}" for n in range(2, 25)]


def test_without_askers_the_queue_is_first_in_first_out() -> None:
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(session, *(ask(f"s{n}", None) for n in range(5)))
    assert drain_one_at_a_time(session) == [f"s{n}" for n in range(5)]


def test_askers_take_turns_round_robin() -> None:
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(
        session,
        *(ask(f"a{n}", "alice") for n in range(3)),
        *(ask(f"b{n}", "bob") for n in range(2)),
        ask("c0", "carol"),
    )
    assert session.queued_askers() == ["alice", "bob", "carol"]
    assert drain_one_at_a_time(session) == ["a0", "b0", "c0", "a1", "b1", "a2"]


def test_runs_without_a_person_are_one_more_lane() -> None:
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(
        session,
        *(ask(f"a{n}", "alice") for n in range(3)),
        *(ask(f"s{n}", None) for n in range(3)),
    )
    assert session.queued_askers() == ["alice", None]
    assert drain_one_at_a_time(session) == ["a0", "s0", "a1", "s1", "a2", "s2"]


def test_one_batch_takes_one_send_per_lane_per_round() -> None:
    session, _ = make_session(limits=UNLIMITED)
    submit_all(
        session, *(ask(f"a{n}", "alice") for n in range(3)), ask("b0", "bob"), ask("c0", "carol")
    )
    assert [s.ref for s in session.next_sends().send] == ["a0", "b0", "c0", "a1", "a2"]
    assert session.queued_askers() == [] and session.counts().in_flight == 5


def test_the_cap_ends_a_batch_and_the_next_batch_goes_on_with_the_next_lane() -> None:
    cap_two = PlanLimits(events_per_minute=None, events_per_hour=None, max_in_flight=2)
    session, _ = make_session(limits=cap_two)
    submit_all(
        session,
        *(ask(f"a{n}", "alice") for n in range(3)),
        *(ask(f"b{n}", "bob") for n in range(3)),
        ask("c0", "carol"),
    )
    first = session.next_sends().send
    assert [s.ref for s in first] == ["a0", "b0"]
    assert session.queued_askers() == ["carol", "alice", "bob"]
    session.on_frame(accepted("evt_1", thread="task-a0"))
    session.on_frame(reply("evt_1", thread="task-a0"))
    assert [s.ref for s in session.next_sends().send] == ["c0"]


def test_pacing_holds_every_lane_and_the_turns_go_on_when_the_window_opens() -> None:
    two_a_minute = PlanLimits(events_per_minute=2, events_per_hour=None, max_in_flight=None)
    session, clock = make_session(limits=two_a_minute)
    submit_all(session, *(ask(f"a{n}", "alice") for n in range(5)))
    assert [s.ref for s in session.next_sends().send] == ["a0", "a1"]
    clock.advance(1)
    assert session.submit(ask("b0", "bob"))
    held = session.next_sends()
    assert held.send == () and held.wake_at == 1_060.0
    clock.advance(59)
    # Alice was served last: Bob's one run goes before the rest of her burst.
    assert [s.ref for s in session.next_sends().send] == ["a2", "b0"]
    clock.advance(60)
    assert [s.ref for s in session.next_sends().send] == ["a3", "a4"]


def test_a_new_asker_joins_the_rotation_at_the_back() -> None:
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(session, *(ask(f"a{n}", "alice") for n in range(3)), ask("b0", "bob"))
    assert [s.ref for s in session.next_sends().send] == ["a0"]
    assert session.submit(ask("c0", "carol"))
    assert session.queued_askers() == ["bob", "alice", "carol"]


def test_a_lane_that_empties_and_fills_again_joins_at_the_back() -> None:
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(session, ask("b0", "bob"), *(ask(f"a{n}", "alice") for n in range(3)))
    assert [s.ref for s in session.next_sends().send] == ["b0"]
    assert session.queued_askers() == ["alice"]
    assert session.submit(ask("b1", "bob"))
    assert session.queued_askers() == ["alice", "bob"]


def test_a_lane_waiting_on_a_busy_thread_keeps_its_place() -> None:
    session, _ = make_session(limits=UNLIMITED)
    assert session.submit(ask("b0", "bob", thread="task-1"))
    assert [s.ref for s in session.next_sends().send] == ["b0"]
    # Bob's next run waits for his first (same agent and thread); Alice's go meanwhile.
    submit_all(session, ask("b1", "bob", thread="task-1"), ask("a0", "alice"), ask("a1", "alice"))
    assert [s.ref for s in session.next_sends().send] == ["a0", "a1"]
    submit_all(session, ask("a2", "alice"), ask("a3", "alice"))
    session.on_frame(accepted("evt_b0"))
    session.on_frame(reply("evt_b0"))
    # Bob was not served since his first run: his next goes first when the gate opens.
    assert [s.ref for s in session.next_sends().send] == ["b1", "a2", "a3"]


def test_the_gate_still_holds_one_event_per_thread_within_a_lane() -> None:
    session, _ = make_session(limits=UNLIMITED)
    submit_all(
        session,
        ask("a0", "alice", thread="task-1"),
        ask("a1", "alice", thread="task-1"),
        ask("a2", "alice", thread="task-2"),
    )
    assert [s.ref for s in session.next_sends().send] == ["a0", "a2"]
    assert session.queued_refs() == ["a1"]


def test_requeued_runs_keep_their_place_in_their_lane() -> None:
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(session, *(ask(f"a{n}", "alice") for n in range(3)), ask("b0", "bob"))
    assert [s.ref for s in session.next_sends().send] == ["a0"]
    assert session.on_disconnect() == [Requeued("a0")]
    session.on_connect()
    assert session.queued_refs() == ["a0", "a1", "a2", "b0"]
    assert drain_one_at_a_time(session) == ["b0", "a0", "a1", "a2"]


def test_an_abandoned_queued_run_leaves_its_lane() -> None:
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(session, ask("a0", "alice"), ask("b0", "bob"), ask("b1", "bob"))
    assert session.abandon("a0")
    assert session.queued_askers() == ["bob"]
    assert session.abandon("b0") and session.abandon("b1")
    assert session.queued_askers() == [] and session.counts().queued == 0
    assert session.next_sends().send == ()


def test_each_asker_is_its_own_lane_whatever_its_key() -> None:
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(session, ask("x0", ""), ask("y0", "0"), ask("z0", None), ask("x1", ""))
    assert session.queued_askers() == ["", "0", None]
    assert drain_one_at_a_time(session) == ["x0", "y0", "z0", "x1"]


def test_a_run_submitted_again_waits_at_the_place_it_came_in() -> None:
    # a0 went out and its answer was lost; asked again, it goes before Alice's later
    # runs, which came after it.
    session, _ = make_session(limits=ONE_AT_A_TIME)
    submit_all(session, ask("a0", "alice"))
    [first] = session.next_sends().send
    session.on_frame(accepted("evt_lost", first.agent_id, first.thread_id))
    submit_all(session, *(ask(f"a{n}", "alice") for n in range(1, 4)))
    assert session.abandon("a0")
    submit_all(session, ask("a0", "alice"))
    assert drain_one_at_a_time(session) == ["a0", "a1", "a2", "a3"]
