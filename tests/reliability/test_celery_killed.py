"""Scenario 4: the Celery worker killed while executing ``dispatch_run``; tasks delivered twice.

``dispatch_run`` is ``acks_late``: a worker killed mid-task leaves its message
unacknowledged for the broker to deliver again, possibly much later, while the
run it had claimed waits. And a broker may deliver one task twice. Neither may
lose a mention or send it to Relay twice.
"""

from __future__ import annotations

import signal
import time

import pytest

from tests.deployment.harness import Deployment, Mention
from tests.deployment.processes import ManagedProcess
from tests.deployment.waiting import wait_until

from .scale import SCALE, dice
from .stack import ASK_ATHENA, assert_recovered, rounds, start_stack
from .tally import Tally, settle

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.timeout(180 + 12 * SCALE.mentions),
]


def dispatch_again(deployment: Deployment, run_ids: list[str]) -> None:
    """Queue ``dispatch_run`` once more per id given, through the real broker."""
    deployment.run_module("tests.reliability.actions", "dispatch", *run_ids)


def claimed_without_payload(deployment: Deployment, mentions: list[Mention]) -> int:
    """Runs a ``dispatch_run`` claimed and did not finish: the task was killed in the act."""
    rows = deployment.runs([m.comment_id for m in mentions])
    return sum(1 for row in rows if row.status == "sending" and not row.payload)


def test_celery_killed_mid_dispatch_and_tasks_delivered_twice(
    deployment: Deployment, tally_sheet: list[Tally]
) -> None:
    rng, seed = dice()
    # Building a payload takes a quarter of a second (see adapters.py): a kill at a
    # random moment of a busy batch lands inside dispatch_run most of the time.
    deployment.settings["DJANGO_SETTINGS_MODULE"] = "tests.reliability.settings"
    start_stack(deployment, token_delay_ms=20)
    started = time.monotonic()
    mentions: list[Mention] = []
    kills = caught_in_the_act = duplicates = 0
    for size in rounds(SCALE.mentions, SCALE.rounds):
        batch = deployment.mention(*[ASK_ATHENA] * size)
        mentions += batch
        run_ids = [str(row.run_id) for row in deployment.runs([m.comment_id for m in batch])]
        # Every task of the batch is delivered twice more (one of them while the
        # first copy may still be waiting in the queue).
        dispatch_again(deployment, run_ids * 2)
        duplicates += 2 * len(run_ids)
        [celery] = [p for p in deployment.processes if p.name == "celery" and p.alive]

        def dispatch_taken(celery: ManagedProcess = celery) -> list[str]:
            return celery.log_lines("relaybridge.dispatch_run")

        wait_until(
            dispatch_taken,
            30,
            "Celery to take a dispatch_run",
        )
        time.sleep(rng.uniform(0.0, 0.5))
        celery.send_signal(signal.SIGKILL)
        celery.wait(timeout=10)
        kills += 1
        caught_in_the_act += claimed_without_payload(deployment, batch)
        deployment.start_celery()
    tally = settle(deployment, "4 Celery killed, tasks twice", mentions, started, 150)
    tally.faults = {
        "celery_kills": kills,
        "runs_claimed_by_a_killed_task": caught_in_the_act,
        "duplicate_deliveries": duplicates,
        "seed": seed,
    }
    tally_sheet.append(tally)
    tally.assert_nothing_lost_or_doubled()
    assert_recovered(deployment)
