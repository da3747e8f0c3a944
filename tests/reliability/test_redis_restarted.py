"""Scenario 3: Redis killed and restarted mid-stream (the test's own server).

Redis carries the Celery broker, the channel layer (the worker's intake and the
pages' pushes), the leadership lock and the streamed text so far. Without
persistence a restart loses all of it. The database is the ledger: every mention
must still end visibly, and none twice.
"""

from __future__ import annotations

import time

import pytest

from tests.deployment.harness import Deployment, Mention
from tests.redis_server import RedisServer

from .scale import SCALE, dice
from .stack import assert_recovered, mixed_bodies, rounds, start_stack, wait_for_streaming
from .tally import Tally, in_flight, record_recovery, settle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(180 + 12 * SCALE.mentions),
]


def test_redis_restarted_mid_stream(
    deployment: Deployment, private_redis: RedisServer, tally_sheet: list[Tally]
) -> None:
    rng, seed = dice()
    start_stack(deployment, token_delay_ms=40, emulator_args=["--agent-delay-ms", "slow=300"])
    started = time.monotonic()
    mentions: list[Mention] = []
    downtimes: list[float] = []
    faults: list[tuple[float, list[Mention]]] = []
    for size in rounds(SCALE.mentions, SCALE.rounds):
        batch = deployment.mention(*mixed_bodies(size))
        mentions += batch
        wait_for_streaming(deployment, batch, 30)
        time.sleep(rng.uniform(0.0, 0.8))
        # A blip, or an outage longer than the relay workers' lock renewal (a second).
        downtime = rng.choice([0.0, rng.uniform(1.0, 4.0)])
        faults.append((time.time(), in_flight(deployment, batch)))
        private_redis.restart(downtime)
        downtimes.append(round(downtime, 1))
    tally = settle(deployment, "3 Redis restarted mid-stream", mentions, started, 120)
    record_recovery(tally, deployment, faults)
    tally.faults = {
        "redis_restarts": private_redis.restarts,
        "downtimes_s": downtimes,
        "seed": seed,
    }
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    assert_recovered(deployment)
    assert all(worker.alive for worker in deployment.relay_workers())
