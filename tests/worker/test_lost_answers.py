"""Answers lost with their connection: Relay restarted mid-answer forgets the event.

The worker used to leave such a run streaming until the watchdog failed it
(``RELAYBRIDGE_STALL_TIMEOUT``, 120 s by default) for a person to retry. Now a run
that hears nothing within ``RELAYBRIDGE_RESEND_GRACE`` of the next connection is
sent again at once (same ``relaybridge_run``, a new ``relaybridge_attempt``), up to
``RELAYBRIDGE_RESEND_LOST`` times, and the page is told why.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from relaybridge import services
from relaybridge.models import AgentRun
from relaybridge.protocol import ErrorCode

from .stack import (
    accepted_run,
    post_mention,
    post_watched_mention,
    relay_stack,
    run_status,
    runs_for,
    wait_for,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]

Status = AgentRun.Status
SLOW_ATHENA = {"agent_delay_ms": {"athena": 60.0}}
#: Short enough for a test; the stall timeout stays far away, so only a resend can help.
QUICK: dict[str, Any] = {"resend_grace": 1.0, "stall_timeout": 60.0}


def fresh(run_id: Any) -> AgentRun:
    return AgentRun.objects.get(run_id=run_id)


async def restart(relay: Any) -> None:
    """Relay goes down and comes back on its port, with no memory of open events."""
    await relay.stop()
    await relay.start()


async def test_an_answer_lost_with_relay_is_asked_again_and_replied_once(redis_stack: str) -> None:
    async with relay_stack(redis_stack, emulator=SLOW_ATHENA, **QUICK) as (_worker, relay):
        comment, listener = await post_watched_mention("@athena summarize this task")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.STREAMING, what="streaming")
        await restart(relay)
        await wait_for(
            lambda: run_status(run.run_id) == Status.REPLIED, within=20, what="the second attempt"
        )
        done = await sync_to_async(fresh)(run.run_id)
        assert done.attempts == 2
        assert done.payload is not None and done.payload["relaybridge_attempt"] == 2
        assert done.payload["relaybridge_run"] == str(run.run_id)
        assert [entry["reason"] for entry in done.attempt_log] == [
            "mention",
            ErrorCode.CONNECTION_LOST,
        ]
        replies = await sync_to_async(
            lambda: comment.task.comments.exclude(pk=comment.pk).count()
        )()
        assert replies == 1
        [error] = listener.events("run.error", str(run.run_id))
        assert error["code"] == ErrorCode.CONNECTION_LOST and error["retry_in"] == 0
        assert error["message"] == "Connection to Relay was lost — asking Athena again"
        statuses = [e["status"] for e in listener.events("run.status", str(run.run_id))]
        assert "retrying" in statuses


async def test_with_resends_off_a_lost_answer_fails_at_once(redis_stack: str) -> None:
    options = QUICK | {"resend_lost": 0}
    async with relay_stack(redis_stack, emulator=SLOW_ATHENA, **options) as (_worker, relay):
        comment, _listener = await post_watched_mention("@athena summarize this task")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.STREAMING, what="streaming")
        await restart(relay)
        await wait_for(lambda: run_status(run.run_id) == Status.FAILED, within=15, what="failed")
        failed = await sync_to_async(fresh)(run.run_id)
        assert failed.error_code == ErrorCode.CONNECTION_LOST and failed.attempts == 1
        assert failed.partial_text  # what was streamed stays for the person who retries


async def test_a_stop_during_the_grace_ends_the_run_for_good(redis_stack: str, caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="relaybridge.worker")
    options = QUICK | {"resend_grace": 3.0}
    async with relay_stack(redis_stack, emulator=SLOW_ATHENA, **options) as (_worker, relay):
        comment, listener = await post_watched_mention("@athena summarize this task")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.STREAMING, what="streaming")
        await restart(relay)
        assert await sync_to_async(services.mark_stopped)(run.run_id, "partial")
        # The grace ends and the worker decides.
        decided = f"run {run.run_id}: its answer was lost, and it ended meanwhile"
        await wait_for(lambda: decided in caplog.text, within=15, what="the decision")
        stopped = await sync_to_async(fresh)(run.run_id)
        assert stopped.status == Status.STOPPED and stopped.attempts == 1
        assert not listener.events("run.error", str(run.run_id))


async def test_a_worker_taking_over_asks_again_for_answers_the_ledger_left_unheard(
    redis_stack: str,
) -> None:
    # Accepted by a worker that died: this Relay never heard of the event, so no frame
    # of it will come. The next worker finds it in the ledger and asks again.
    run = await sync_to_async(accepted_run)("Left by a dead worker")
    async with relay_stack(redis_stack, **QUICK):
        await wait_for(
            lambda: run_status(run.run_id) == Status.REPLIED, within=20, what="the new attempt"
        )
    done = await sync_to_async(fresh)(run.run_id)
    assert done.attempts == 2 and done.event_id != run.event_id
    assert done.attempt_log[-1]["reason"] == ErrorCode.CONNECTION_LOST


async def test_answers_lost_together_are_all_asked_again_not_failed_as_stalled(
    redis_stack: str,
) -> None:
    # Silent longer than the stall timeout by the time the grace ends, as after a slow
    # reconnect: the watchdog must leave every one of them to be asked again, also
    # those still waiting their turn while the first ones are being sent again.
    options: dict[str, Any] = {"resend_grace": 1.5, "stall_timeout": 0.5}
    async with relay_stack(redis_stack, emulator=SLOW_ATHENA, **options) as (_worker, relay):
        comments = [
            await post_mention(f"@athena summarize {n}", title=f"Lost together {n}")
            for n in range(8)
        ]
        runs = [(await runs_for(comment))[0] for comment in comments]
        await wait_for(
            lambda: all(run_status(r.run_id) == Status.STREAMING for r in runs),
            what="every run streaming",
        )
        await restart(relay)
        ended_ids = {Status.REPLIED, Status.FAILED}
        await wait_for(
            lambda: all(run_status(r.run_id) in ended_ids for r in runs),
            within=30,
            what="every run to end",
        )
        ended = [await sync_to_async(fresh)(run.run_id) for run in runs]
        assert [(r.status, r.error_code) for r in ended] == [(Status.REPLIED, "")] * len(runs)
        assert all(r.attempt_log[-1]["reason"] == ErrorCode.CONNECTION_LOST for r in ended)
