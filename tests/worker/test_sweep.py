"""The sweep: runs whose dispatch was lost reach Relay without another trip through Celery."""

from __future__ import annotations

from typing import Any

import pytest

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
