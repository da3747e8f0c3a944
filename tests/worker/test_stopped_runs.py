"""A run stopped from the page while its agent never finishes.

Relay has no cancel: the event stays open on Relay's side and the worker keeps
its (agent, thread) slot, so that a next event on the thread cannot collide with
the stopped answer. The stopped run used to keep that slot (and an in-flight
place) forever: the next mention of the agent on the same task never left
``sending``.
"""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from relaybridge import services
from relaybridge.models import AgentRun

from .stack import post_mention, relay_stack, run_status, runs_for, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]

Status = AgentRun.Status


async def test_a_stopped_run_frees_its_thread_after_the_stall_timeout(redis_stack: str) -> None:
    async with relay_stack(redis_stack, stall_timeout=0.8) as (worker, _relay):
        first = await post_mention("@stall tell me everything")
        [stopped] = await runs_for(first)
        await wait_for(lambda: run_status(stopped.run_id) == Status.STREAMING, what="streaming")
        assert await sync_to_async(services.mark_stopped)(stopped.run_id, "I am")

        # The same agent, the same task: it must wait for the stopped answer's slot,
        # then be sent, and end (by the watchdog, since `stall` never finishes).
        task = await sync_to_async(lambda: first.task)()
        second = await post_mention("@stall and now?", task=task)
        [follow_up] = await runs_for(second)
        await wait_for(
            lambda: run_status(follow_up.run_id) == Status.FAILED, within=15, what="the follow-up"
        )
        assert await sync_to_async(run_status)(stopped.run_id) == Status.STOPPED
        assert worker.connection is not None and worker.connection.counts().in_flight == 0
