"""Fair use of the one Relay connection: one person's burst delays only that person.

The relay worker holds the deployment's only Relay connection, paced to the plan.
Alice posts a burst (25 comments, each mentioning four agents: 100 runs) against
an emulator with a small plan (two events in flight, 30 a minute, the same numbers
on both sides); then Bob asks one agent once, on another task. Bob's run must go
out within a round of turns of being queued, not behind Alice's whole burst.

The assertion is about order, never wall-clock: how many of Alice's runs went out
between Bob's run reaching the worker's queue and Bob's run going out. Bob's wait
alone and behind the burst, both measured here, are printed for the record
(``pytest -s``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from project.tasks.models import Comment, Task
from relaybridge.emulator.limits import Plan
from relaybridge.emulator.load import LoadProfile
from relaybridge.models import AgentRun
from relaybridge.protocol import PlanLimits
from relaybridge.worker.bridge import BridgeWorker
from tests.worker.stack import relay_stack, run_status, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

Status = AgentRun.Status

#: Small enough that the queue, not the agents, decides who waits.
SMALL = PlanLimits(events_per_minute=30, events_per_hour=None, max_in_flight=2)
#: Every mention of the burst names these four agents (all answer, none fails).
AGENTS = ("athena", "klyve", "slow", "load")
COMMENTS = 25
BURST = COMMENTS * len(AGENTS)
#: Two lanes (Alice's, Bob's): at most one of Alice's sends is due before Bob's
#: turn, and a batch the session chose just before Bob's run arrived may still be
#: recorded after it (up to the in-flight cap). Without fairness it is the burst.
ALLOWED_AHEAD = 2 + (SMALL.max_in_flight or 0)
#: Queued runs left at the end are not waited for.
SHUTDOWN_S = 1.0


def make_users() -> tuple[Any, Any]:
    from django.contrib.auth import get_user_model

    make = get_user_model().objects.create_user
    return make("alice", password="pw"), make("bob", password="pw")


def post(author: Any, task: Task, body: str) -> list[str]:
    """Save ``author``'s comment; its runs' ids (dispatched at once: eager Celery)."""
    comment = Comment.objects.create(task=task, author=author, body=body)
    return [
        str(r) for r in AgentRun.objects.filter(comment=comment).values_list("run_id", flat=True)
    ]


def burst(author: Any) -> list[str]:
    task = Task.objects.create(title="Alice's burst")
    mentions = " ".join(f"@{agent}" for agent in AGENTS)
    return [run for n in range(COMMENTS) for run in post(author, task, f"{mentions} #{n}")]


def sent_count(run_ids: list[str]) -> int:
    return AgentRun.objects.filter(run_id__in=run_ids, sent_at__isnull=False).count()


def waits(run_id: str) -> tuple[float, float]:
    """Seconds from queued to sent, and to the reply, of a replied run."""
    run = AgentRun.objects.get(run_id=run_id)
    assert run.status == Status.REPLIED
    assert run.sent_at is not None and run.finished_at is not None
    return (
        (run.sent_at - run.queued_at).total_seconds(),
        (run.finished_at - run.queued_at).total_seconds(),
    )


async def until(check: Callable[[], Awaitable[bool]], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.01)


def carried(worker: BridgeWorker, run_id: str) -> bool:
    assert worker.connection is not None, "the worker lost its leadership"
    return worker.connection.carries(run_id)


async def test_a_burst_from_one_person_delays_only_that_person(
    redis_stack: str, settings: Any
) -> None:
    settings.RELAYBRIDGE_AGENTS = list(AGENTS)
    emulator = {
        "plan": Plan("small", SMALL),
        "token_delay_ms": 20.0,
        "agent_delay_ms": {"slow": 20.0},
        "load_agent": LoadProfile(tokens=20, rate=40.0),
    }
    alice, bob = await sync_to_async(make_users)()
    async with relay_stack(
        redis_stack, emulator=emulator, limits=SMALL, shutdown_timeout=SHUTDOWN_S
    ) as (worker, _):
        bobs_task = await sync_to_async(Task.objects.create)(title="Bob's task")

        # Bob alone: his wait with nobody else asking.
        [alone] = await sync_to_async(post)(bob, bobs_task, "@athena where are we?")
        await wait_for(lambda: run_status(alone) == Status.REPLIED, what="Bob's first reply")

        # Alice's burst, all of it in the worker's queue before Bob asks again.
        alices = await sync_to_async(burst)(alice)
        assert len(alices) == BURST

        async def all_queued_or_sent() -> bool:
            waiting = [run for run in alices if not carried(worker, run)]
            return not waiting or await sync_to_async(sent_count)(waiting) == len(waiting)

        await until(all_queued_or_sent, 30.0, "Alice's burst in the worker's queue")

        [behind] = await sync_to_async(post)(bob, bobs_task, "@athena and now?")

        async def bob_queued_or_sent() -> bool:
            return carried(worker, behind) or bool(await sync_to_async(sent_count)([behind]))

        await until(bob_queued_or_sent, 10.0, "Bob's run in the worker's queue")
        sent_before = await sync_to_async(sent_count)(alices)

        # Wait for Bob's run to go out -- or for enough of Alice's to prove it unfair.
        async def bob_sent_or_passed_over() -> bool:
            bob_sent = await sync_to_async(sent_count)([behind])
            return bool(bob_sent) or await sync_to_async(sent_count)(alices) > (
                sent_before + ALLOWED_AHEAD
            )

        await until(bob_sent_or_passed_over, 120.0, "Bob's run sent or passed over")

        def ahead_of_bob() -> int:
            bobs = AgentRun.objects.get(run_id=behind)
            assert bobs.sent_at is not None, "Bob's run waited behind Alice's burst"
            return (
                AgentRun.objects.filter(run_id__in=alices, sent_at__lte=bobs.sent_at).count()
                - sent_before
            )

        ahead = await sync_to_async(ahead_of_bob)()
        assert ahead <= ALLOWED_AHEAD, f"{ahead} of Alice's runs went out before Bob's"
        await wait_for(lambda: run_status(behind) == Status.REPLIED, what="Bob's second reply")
        left = BURST - await sync_to_async(sent_count)(alices)

        alone_sent, alone_replied = await sync_to_async(waits)(alone)
        behind_sent, behind_replied = await sync_to_async(waits)(behind)
        print(
            f"\nBob's wait, sent / replied: alone {alone_sent:.2f} s / {alone_replied:.2f} s; "
            f"behind Alice's burst of {BURST} ({left} still queued) "
            f"{behind_sent:.2f} s / {behind_replied:.2f} s; "
            f"{sent_before} of Alice's runs sent before Bob asked, {ahead} between"
        )
