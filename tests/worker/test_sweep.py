"""The sweep: runs whose dispatch was lost reach Relay without another trip through Celery."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from relaybridge import services
from relaybridge.models import AgentRun

from .stack import post_mention, relay_stack, run_status, runs_for, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]


async def test_a_run_whose_dispatch_was_lost_is_sent_by_the_sweep_itself(
    redis_stack: str, monkeypatch: Any
) -> None:
    monkeypatch.setattr(services, "queue_dispatch", lambda *args, **kwargs: None)

    def through_celery() -> Any:
        raise AssertionError("the sweep queued dispatch_run instead of sending the run")

    monkeypatch.setattr("relaybridge.services.dispatch.dispatch_task", through_celery)
    async with relay_stack(redis_stack, sweep_interval=0.3, redispatch_after=0.2):
        comment = await post_mention("@athena summarize this task")
        [run] = await runs_for(comment)
        assert run.status == AgentRun.Status.QUEUED  # its dispatch_run never ran
        await wait_for(lambda: run_status(run.run_id) == AgentRun.Status.REPLIED, what="the reply")


async def test_the_sweep_sends_one_threads_runs_in_the_order_they_were_posted(
    redis_stack: str,
) -> None:
    # Three mentions on one task, all waiting for the sweep when the worker starts: the
    # worker listens on a channel no hand-off goes to, so only the sweep brings them in.
    first = await post_mention("@athena first question")
    later = [await post_mention(f"@athena question {n}", task=first.task) for n in ("two", "three")]
    runs = [run for comment in (first, *later) for run in await runs_for(comment)]
    assert [run.status for run in runs] == [AgentRun.Status.SENDING] * 3
    async with relay_stack(redis_stack, sweep_interval=0.3, intake_channel="relaybridge.unused"):
        await wait_for(
            lambda: all(run_status(run.run_id) == AgentRun.Status.REPLIED for run in runs),
            what="every reply",
        )
    ended = await sync_to_async(lambda: [AgentRun.objects.get(pk=run.pk) for run in runs])()
    # Each event went to Relay only after the one posted before it had its reply.
    for position, (earlier, later_run) in enumerate(pairwise(ended), start=2):
        assert earlier.finished_at is not None and later_run.sent_at is not None
        assert later_run.sent_at >= earlier.finished_at, (
            f"mention {position} went to Relay before mention {position - 1} was answered"
        )
