"""The coalescer decides pushes from an injected clock: no event loop, no sleeping."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaybridge.worker.coalesce import Delta, TokenCoalescer


def test_first_token_is_pushed_at_once() -> None:
    coalescer = TokenCoalescer(0.05)
    assert coalescer.add("r1", "Hello", now=10.0) == Delta("r1", 1, "Hello")


def test_tokens_within_the_interval_are_joined_into_one_push() -> None:
    coalescer = TokenCoalescer(0.05)
    coalescer.add("r1", "Hello", now=10.0)
    assert coalescer.add("r1", " there", now=10.01) is None
    assert coalescer.add("r1", ",", now=10.02) is None
    assert coalescer.next_due() == pytest.approx(10.05)
    assert coalescer.due(now=10.04) == []
    assert coalescer.due(now=10.05) == [Delta("r1", 2, " there,")]
    assert coalescer.next_due() is None


def test_a_token_after_the_interval_is_pushed_immediately() -> None:
    coalescer = TokenCoalescer(0.05)
    coalescer.add("r1", "a", now=1.0)
    assert coalescer.add("r1", "b", now=1.2) == Delta("r1", 2, "b")


def test_runs_are_coalesced_separately() -> None:
    coalescer = TokenCoalescer(0.05)
    assert coalescer.add("r1", "one", now=1.0) == Delta("r1", 1, "one")
    assert coalescer.add("r2", "two", now=1.01) == Delta("r2", 1, "two")
    coalescer.add("r1", " more", now=1.02)
    coalescer.add("r2", " more", now=1.03)
    assert coalescer.due(now=1.055) == [Delta("r1", 2, " more")]
    assert coalescer.due(now=1.07) == [Delta("r2", 2, " more")]


def test_zero_interval_turns_coalescing_off() -> None:
    coalescer = TokenCoalescer(0)
    pushes = [coalescer.add("r1", t, now=5.0) for t in ["a", "b", "c"]]
    assert pushes == [Delta("r1", 1, "a"), Delta("r1", 2, "b"), Delta("r1", 3, "c")]


def test_flush_pushes_what_is_pending_before_a_reply() -> None:
    coalescer = TokenCoalescer(1.0)
    coalescer.add("r1", "a", now=0.0)
    coalescer.add("r1", "b", now=0.1)
    assert coalescer.flush("r1", now=0.2) == Delta("r1", 2, "b")
    assert coalescer.flush("r1", now=0.3) is None
    assert coalescer.flush("unknown", now=0.3) is None


def test_resume_continues_the_sequence_of_an_adopted_run() -> None:
    coalescer = TokenCoalescer(0.05)
    coalescer.resume("r1", 7)
    assert coalescer.add("r1", "x", now=1.0) == Delta("r1", 8, "x")
    coalescer.forget("r1")
    assert "r1" not in coalescer
    assert coalescer.last_seq("r1") == 0


def test_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        TokenCoalescer(-1)


@given(
    interval=st.sampled_from([0.0, 0.01, 0.05, 0.5]),
    events=st.lists(
        st.tuples(st.sampled_from(["r1", "r2", "r3"]), st.text(max_size=5), st.floats(0, 0.2)),
        max_size=60,
    ),
)
def test_nothing_is_lost_doubled_or_reordered(
    interval: float, events: list[tuple[str, str, float]]
) -> None:
    coalescer = TokenCoalescer(interval)
    now = 0.0
    pushed: dict[str, list[Delta]] = {}
    sent: dict[str, str] = {}
    for run, text, step in events:
        now += step
        for delta in coalescer.due(now):
            pushed.setdefault(delta.run, []).append(delta)
        sent[run] = sent.get(run, "") + text
        delta = coalescer.add(run, text, now)
        if delta:
            pushed.setdefault(delta.run, []).append(delta)
    for run in sent:
        final = coalescer.flush(run, now + 1)
        if final:
            pushed.setdefault(run, []).append(final)
    for run, text in sent.items():
        deltas = pushed.get(run, [])
        assert [d.seq for d in deltas] == list(range(1, len(deltas) + 1))
        assert "".join(d.text for d in deltas) == text
