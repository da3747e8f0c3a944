"""Reconnect backoff: full jitter under a doubling, capped ceiling."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from relaybridge.protocol import Backoff


def fixed(value: float) -> Iterator[float]:
    while True:
        yield value


def backoff(draw: float, **kwargs: float) -> Backoff:
    source = fixed(draw)
    return Backoff(random=lambda: next(source), **kwargs)


def test_ceiling_doubles_from_one_second_to_the_sixty_second_cap() -> None:
    b = backoff(0.999999)
    ceilings = []
    for _ in range(9):
        ceilings.append(b.ceiling_s)
        b.next_delay()
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60, 60]


def test_full_jitter_spans_zero_to_the_ceiling() -> None:
    assert [backoff(0.0).next_delay() for _ in range(3)] == [0.0] * 3
    top = backoff(0.999)
    assert [round(top.next_delay(), 3) for _ in range(4)] == [0.999, 1.998, 3.996, 7.992]
    half = backoff(0.5)
    assert [half.next_delay() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]


def test_delays_vary_with_the_random_source() -> None:
    draws = iter([0.1, 0.9, 0.5])
    b = Backoff(random=lambda: next(draws))
    assert [b.next_delay() for _ in range(3)] == pytest.approx([0.1, 1.8, 2.0])


def test_a_misbehaving_source_is_clamped() -> None:
    assert backoff(-5.0).next_delay() == 0.0
    assert backoff(7.0).next_delay() == 1.0


def test_reset_starts_over() -> None:
    b = backoff(1.0)
    for _ in range(5):
        b.next_delay()
    assert b.failures == 5
    b.reset()
    assert (b.failures, b.ceiling_s, b.next_delay()) == (0, 1.0, 1.0)


def test_only_a_healthy_connection_resets() -> None:
    b = backoff(1.0)
    for _ in range(4):
        b.next_delay()
    b.connection_closed(lasted_s=59.9)
    assert b.ceiling_s == 16
    b.connection_closed(lasted_s=60.0)
    assert b.ceiling_s == 1


def test_auth_failures_go_straight_to_the_cap() -> None:
    low, high = backoff(0.0), backoff(1.0)
    assert low.next_auth_failure_delay() == 30.0  # never a hot loop, even on a bad draw
    assert high.next_auth_failure_delay() == 60.0
    assert low.ceiling_s == 60.0
    assert low.next_delay() == 0.0 and low.ceiling_s == 60.0  # stays capped until a reset
    low.reset()
    assert low.ceiling_s == 1.0


def test_many_failures_do_not_overflow() -> None:
    b = backoff(1.0)
    for _ in range(5_000):
        delay = b.next_delay()
    assert delay == 60.0


def test_custom_bounds_and_validation() -> None:
    b = backoff(1.0, base_s=0.5, cap_s=3.0)
    assert [b.next_delay() for _ in range(4)] == [0.5, 1.0, 2.0, 3.0]
    with pytest.raises(ValueError):
        Backoff(base_s=10, cap_s=1)
    with pytest.raises(ValueError):
        Backoff(base_s=0)


def test_default_source_stays_within_bounds() -> None:
    b = Backoff()
    for _ in range(50):
        ceiling = b.ceiling_s
        assert 0.0 <= b.next_delay() <= ceiling


def test_a_connection_that_carried_an_answer_resets_however_short() -> None:
    # Relay killed every few seconds: each restart is a new outage.
    b = backoff(1.0)
    for _ in range(4):
        b.next_delay()
    b.connection_closed(lasted_s=3.0)
    assert b.ceiling_s == 16
    b.connection_closed(lasted_s=3.0, answered=True)
    assert b.ceiling_s == 1
