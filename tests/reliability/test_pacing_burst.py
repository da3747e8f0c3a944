"""Scenario 7: a burst of mentions against Relay's Starter limits (60/min, 10 in flight).

The relay worker paces itself to the plan, so Relay (the emulator enforces the same
limits) should almost never have to refuse an event with ``RATE_LIMITED``, and
every mention is eventually answered: nothing is dropped, however long the queue.
The full form sends 500 mentions at once, which the Starter plan spreads over more
than eight minutes; the short form sends enough to hold the in-flight cap.
"""

from __future__ import annotations

import time

import pytest

from relaybridge.protocol.pacing import STARTER
from tests.deployment.harness import Deployment, Mention

from .scale import SCALE
from .stack import ASK_ATHENA, start_stack
from .tally import Tally, settle

#: Minutes the plan needs for the burst, plus room for a loaded machine.
SPREAD_S = 60.0 * SCALE.burst / (STARTER.events_per_minute or SCALE.burst)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(int(240 + 1.5 * SPREAD_S)),
]

#: Mentions made per process: each is one ``mention`` subprocess of the harness.
CHUNK = 100


def test_burst_against_the_starter_limits_is_paced_and_all_replied(
    deployment: Deployment, tally_sheet: list[Tally]
) -> None:
    emulator = start_stack(deployment, token_delay_ms=20)
    started = time.monotonic()
    mentions: list[Mention] = []
    for first in range(0, SCALE.burst, CHUNK):
        count = min(CHUNK, SCALE.burst - first)
        mentions += deployment.mention(*[ASK_ATHENA] * count, title=f"Burst {first}")
    tally = settle(deployment, "7 burst vs Starter limits", mentions, started, 120 + 1.3 * SPREAD_S)
    log = emulator.log_text()
    rate_limited = log.count(": RATE_LIMITED")
    tally.faults = {
        "rate_limited_refusals": rate_limited,
        "events_accepted": log.count("accepted evt_"),
    }
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    assert tally.replied == tally.mentions, tally.failed_runs
    # Pacing keeps Relay's refusals rare: at most one in a hundred events.
    assert rate_limited <= SCALE.burst // 100, f"{rate_limited} RATE_LIMITED refusals"
