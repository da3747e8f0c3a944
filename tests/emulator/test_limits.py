"""Plans and rate limits (protocol §5): windows, the in-flight cap, check order."""

from __future__ import annotations

from relaybridge.emulator import PLANS, SCALE, STARTER, UNLIMITED, Plan
from relaybridge.emulator.limits import AppLimiter
from relaybridge.protocol import pacing
from relaybridge.protocol.pacing import PlanLimits
from relaybridge.testing import TEST_APP_TOKEN

from .conftest import MakeRelay
from .wire import app_message, open_peer


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_published_plans() -> None:
    starter, scale = STARTER.limits, SCALE.limits
    assert (starter.events_per_minute, starter.events_per_hour, starter.max_in_flight) == (
        60,
        3_600,
        10,
    )
    assert (scale.events_per_minute, scale.events_per_hour, scale.max_in_flight) == (
        300,
        18_000,
        50,
    )
    assert PLANS == {"starter": STARTER, "scale": SCALE, "unlimited": UNLIMITED}
    # The same numbers the relay worker paces itself by.
    assert {name: plan.limits for name, plan in PLANS.items()} == pacing.PLANS


def test_limiter_minute_window_slides() -> None:
    clock = FakeClock()
    limiter = AppLimiter(STARTER, clock)
    for _ in range(60):
        assert limiter.refusal() is None
        limiter.accept()
        limiter.finish()
    assert "per minute" in (limiter.refusal() or "")
    clock.now += 60.0
    assert limiter.refusal() is None


def test_limiter_hour_window_and_in_flight() -> None:
    clock = FakeClock()
    limiter = AppLimiter(Plan("p", PlanLimits(None, 3, 2)), clock)
    limiter.accept()
    limiter.accept()
    assert "concurrent" in (limiter.refusal() or "")
    limiter.finish()
    limiter.accept()
    limiter.finish()
    limiter.finish()
    assert "per hour" in (limiter.refusal() or "")
    clock.now += 3600.0
    assert limiter.refusal() is None


def test_unlimited_plan_never_refuses() -> None:
    limiter = AppLimiter(UNLIMITED, FakeClock())
    for _ in range(1000):
        limiter.accept()
    assert limiter.refusal() is None


async def test_rate_limited_per_minute(make_relay: MakeRelay) -> None:
    clock = FakeClock()
    async with (
        make_relay(plan=Plan("tiny", PlanLimits(3, 100, 100)), clock=clock) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as peer,
    ):
        for n in range(3):
            assert (await peer.submit("klyve", f"t{n}", app_message()))["type"] == "accepted"
        limited = await peer.submit("klyve", "t3", app_message())
        assert limited["type"] == "error" and limited["event_id"] is None
        assert limited["code"] == "RATE_LIMITED" and limited["agent_id"] == "klyve"
        # The refusal itself does not count; a minute later the window has room again.
        clock.now += 61
        assert (await peer.submit("klyve", "t4", app_message()))["type"] == "accepted"


async def test_limits_are_per_app_across_connections(make_relay: MakeRelay) -> None:
    async with (
        make_relay(
            plan=Plan("tiny", PlanLimits(1, 100, 100)),
            clock=FakeClock(),
            app_tokens={TEST_APP_TOKEN: "test", "rlk_other_1": "other"},
        ) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as first,
        open_peer(relay.url, TEST_APP_TOKEN) as second,
        open_peer(relay.url, "rlk_other_1") as other,
    ):
        assert (await first.submit("klyve", "a", app_message()))["type"] == "accepted"
        assert (await second.submit("klyve", "b", app_message()))["code"] == "RATE_LIMITED"
        assert (await other.submit("klyve", "c", app_message()))["type"] == "accepted"


async def test_in_flight_cap(make_relay: MakeRelay) -> None:
    async with (
        make_relay(plan=Plan("two", PlanLimits(None, None, 2))) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as peer,
    ):
        stalled = [await peer.submit("stall", f"s{n}", app_message()) for n in range(2)]
        assert all(frame["type"] == "accepted" for frame in stalled)
        third = await peer.submit("klyve", "k", app_message())
        assert third["code"] == "RATE_LIMITED" and third["event_id"] is None
        assert "concurrent" in third["error"].lower()
        assert relay.in_flight("test") == 2


async def test_in_flight_frees_up_when_an_event_ends(make_relay: MakeRelay) -> None:
    async with (
        make_relay(plan=Plan("one", PlanLimits(None, None, 1))) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as peer,
    ):
        first = await peer.submit("klyve", "a", app_message())
        await peer.until_terminal(first["event_id"])
        assert (await peer.submit("broken", "b", app_message()))["type"] == "accepted"


async def test_rate_limit_is_checked_before_presence(make_relay: MakeRelay) -> None:
    async with (
        make_relay(plan=Plan("one", PlanLimits(1, None, None))) as relay,
        open_peer(relay.url, TEST_APP_TOKEN) as peer,
    ):
        assert (await peer.submit("klyve", "k", app_message()))["type"] == "accepted"
        assert (await peer.submit("offline", "t", app_message()))["code"] == "RATE_LIMITED"


async def test_a_restarted_relay_has_forgotten_the_events_open_when_it_stopped(
    make_relay: MakeRelay,
) -> None:
    # As a killed Relay process: the events it forgot no longer take the in-flight cap.
    async with make_relay(plan=Plan("two", PlanLimits(None, None, 2))) as relay:
        async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
            for n in range(2):
                assert (await peer.submit("stall", f"s{n}", app_message()))["type"] == "accepted"
        await relay.stop()
        assert relay.in_flight("test") == 0 and relay.open_event_ids == []
        await relay.start()
        async with open_peer(relay.url, TEST_APP_TOKEN) as peer:
            assert (await peer.submit("stall", "after", app_message()))["type"] == "accepted"
