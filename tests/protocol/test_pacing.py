"""Plan limits and the sliding windows that pace sends."""

from __future__ import annotations

import pytest

from relaybridge.protocol import SCALE, STARTER, UNLIMITED, Pacer, PlanLimits, plan_limits
from relaybridge.protocol.pacing import SlidingWindow


def test_published_plans() -> None:
    assert PlanLimits(60, 3_600, 10) == STARTER
    assert PlanLimits(300, 18_000, 50) == SCALE
    assert PlanLimits(None, None, None) == UNLIMITED


def test_only_a_plan_with_a_window_counts_its_events() -> None:
    assert STARTER.windowed and SCALE.windowed
    assert PlanLimits(None, 100, None).windowed and PlanLimits(5, None, None).windowed
    # In-flight caps alone count nothing over time.
    assert not UNLIMITED.windowed and not PlanLimits(None, None, 10).windowed


@pytest.mark.parametrize(
    ("name", "limits"), [("starter", STARTER), (" Scale ", SCALE), ("UNLIMITED", UNLIMITED)]
)
def test_plan_by_name(name: str, limits: PlanLimits) -> None:
    assert plan_limits(name) == limits


def test_unknown_plan_names_the_choices() -> None:
    with pytest.raises(ValueError, match="scale, starter, unlimited"):
        plan_limits("enterprise")


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PlanLimits(0, 10, 10)


def test_window_frees_exactly_one_window_after_the_oldest_send() -> None:
    window = SlidingWindow(limit=3, length_s=60)
    for t in (0.0, 10.0, 20.0):
        assert window.free_at(t) is None
        window.record(t)
    assert window.free_at(20.0) == 60.0
    assert window.free_at(59.999) == 60.0
    assert window.free_at(60.0) is None  # the send at 0 no longer counts
    assert window.count(60.0) == 2


def test_margin_widens_the_window() -> None:
    window = SlidingWindow(limit=1, length_s=60, margin_s=1.5)
    window.record(0.0)
    assert window.free_at(60.0) == 61.5


def test_pacer_takes_the_later_of_both_windows() -> None:
    pacer = Pacer(PlanLimits(events_per_minute=2, events_per_hour=3, max_in_flight=None))
    assert pacer.allow(0.0) and pacer.allow(1.0)
    assert not pacer.allow(2.0)
    assert pacer.free_at(2.0) == 60.0  # the minute window
    assert pacer.allow(60.0)
    assert pacer.free_at(61.0) == 3_600.0  # now the hour window binds
    assert pacer.allow(3_600.0)


def test_unlimited_windows_record_nothing() -> None:
    pacer = Pacer(UNLIMITED)
    for t in range(1_000):
        assert pacer.allow(float(t))
    assert pacer.minute.count(1_000.0) == 0


def test_lowering_limits_keeps_what_was_recorded() -> None:
    pacer = Pacer(PlanLimits(10, 100, None))
    for t in (0.0, 1.0, 2.0):
        pacer.record(t)
    pacer.set_limits(PlanLimits(2, 100, None))
    # Three sends in the window and a limit of two: two must leave, the last at 61.
    assert pacer.free_at(3.0) == 61.0


def test_sends_of_an_earlier_connection_holder_count_in_the_windows() -> None:
    # A worker taking over at 100 s: its predecessor sent at 50 and 90 (given unsorted).
    pacer = Pacer(PlanLimits(events_per_minute=2, events_per_hour=3, max_in_flight=None))
    pacer.recall([90.0, 50.0])
    assert pacer.free_at(100.0) == 110.0  # the send at 50 leaves the minute window
    assert pacer.allow(110.0)
    assert pacer.free_at(111.0) == 3_650.0  # three within the hour
