"""Scenarios 1 and 2: Relay and the relay worker killed (SIGKILL) mid-stream, repeatedly.

Whatever dies, every mention must end in exactly one of: one saved reply, a visible
failure with its reason, a visible stop. Nothing may stay on its way forever, and
no run may get a second reply comment.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.deployment.harness import Deployment, Mention
from tests.deployment.waiting import wait_until

from .scale import SCALE, dice
from .stack import (
    ASK_ATHENA,
    LOCK_TTL,
    SLOW_AGENT_DELAY,
    assert_recovered,
    leader,
    mixed_bodies,
    rounds,
    start_relay_worker,
    start_stack,
    wait_for_streaming,
)
from .tally import Tally, in_flight, record_recovery, settle

#: The next worker needs the lock's TTL and a connection to take over; a watchdog
#: shorter than that would fail answers that are still arriving before anyone reads them.
TAKEOVER_SETTINGS = {"RELAYBRIDGE_STALL_TIMEOUT": "10"}
#: How a run whose answer was lost with Relay ends when it does not get a reply.
LOST_ANSWER_CODES = {"RELAYBRIDGE_CONNECTION_LOST", "RELAYBRIDGE_STALLED"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(120 + 12 * SCALE.mentions),
]


def test_relay_killed_at_random_points_mid_stream(
    deployment: Deployment, tally_sheet: list[Tally]
) -> None:
    rng, seed = dice()
    emulator = start_stack(deployment, token_delay_ms=40)
    started = time.monotonic()
    mentions: list[Mention] = []
    faults: list[tuple[float, list[Mention]]] = []
    kills = 0
    for size in rounds(SCALE.mentions, SCALE.rounds):
        batch = deployment.mention(*[ASK_ATHENA] * size)
        mentions += batch
        wait_for_streaming(deployment, batch, 20)
        time.sleep(rng.uniform(0.0, 0.8))  # somewhere in the one-second answers
        faults.append((time.time(), in_flight(deployment, batch)))
        emulator.kill()
        kills += 1
        emulator.start()
    tally = settle(deployment, "1 Relay killed mid-stream", mentions, started, deadline=90)
    record_recovery(tally, deployment, faults)
    tally.faults = {"relay_kills": kills, "seed": seed}
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    # Relay forgets its open events when it dies: those runs are asked again (or sent
    # again if Relay never accepted them); one lost every time fails visibly.
    assert set(tally.failure_codes) <= LOST_ANSWER_CODES, tally.failure_codes
    assert_recovered(deployment)


def test_relay_worker_killed_mid_stream_and_restarted(
    deployment: Deployment, tally_sheet: list[Tally]
) -> None:
    rng, seed = dice()
    deployment.settings.update(TAKEOVER_SETTINGS)
    start_stack(deployment, token_delay_ms=40, emulator_args=SLOW_AGENT_DELAY)
    [worker] = deployment.relay_workers()
    started = time.monotonic()
    mentions: list[Mention] = []
    faults: list[tuple[float, list[Mention]]] = []
    kills = 0
    for size in rounds(SCALE.mentions, SCALE.rounds):
        batch = deployment.mention(*mixed_bodies(size))
        mentions += batch
        wait_for_streaming(deployment, batch, 20)
        time.sleep(rng.uniform(0.0, 0.8))
        faults.append((time.time(), in_flight(deployment, batch)))
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=10)
        kills += 1
        worker = start_relay_worker(deployment)
        # The next kill waits for this round to end: killing the worker that is
        # taking the answers over would only test the same fault twice.
        deployment.wait_until_ended(batch, 60)
    tally = settle(deployment, "2a relay worker killed, restarted", mentions, started, 90)
    record_recovery(tally, deployment, faults)
    tally.faults = {"worker_kills": kills, "seed": seed}
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    # The slow answers outlast the restart: the next worker saves them.
    assert tally.replied > 0, tally
    assert_recovered(deployment)


def test_standby_relay_worker_takes_over_from_a_killed_leader(
    deployment: Deployment, tally_sheet: list[Tally]
) -> None:
    rng, seed = dice()
    deployment.settings.update(TAKEOVER_SETTINGS)
    start_stack(deployment, token_delay_ms=40, emulator_args=SLOW_AGENT_DELAY, workers=2)
    started = time.monotonic()
    mentions: list[Mention] = []
    faults: list[tuple[float, list[Mention]]] = []
    kills = 0
    for size in rounds(SCALE.mentions, SCALE.rounds):
        current = wait_until(lambda: leader(deployment), LOCK_TTL + 20, "a leading relay worker")
        batch = deployment.mention(*mixed_bodies(size))
        mentions += batch
        wait_for_streaming(deployment, batch, 20)
        time.sleep(rng.uniform(0.0, 0.8))
        faults.append((time.time(), in_flight(deployment, batch)))
        current.send_signal(signal.SIGKILL)
        current.wait(timeout=10)
        kills += 1
        # The standby takes over; a fresh process becomes the next standby.
        start_relay_worker(deployment)
        deployment.wait_until_ended(batch, 60)
    tally = settle(deployment, "2b standby takes over", mentions, started, 90)
    record_recovery(tally, deployment, faults)
    tally.faults = {"leader_kills": kills, "seed": seed}
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    assert tally.replied > 0, tally
    assert_recovered(deployment)
