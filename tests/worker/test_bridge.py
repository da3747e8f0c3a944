"""The relay worker end to end, in one event loop: emulator sockets, Redis, database."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.utils import timezone

from project.tasks.models import Comment
from relaybridge import services
from relaybridge.models import AgentRun
from relaybridge.protocol import PlanLimits
from relaybridge.worker.status import read_status

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


def _reply_comments(run: AgentRun) -> list[Comment]:
    return list(Comment.objects.filter(task_id=run.comment.task_id, agent_id=run.agent_id))


def _fresh(run: AgentRun) -> AgentRun:
    return AgentRun.objects.select_related("comment", "reply_comment").get(pk=run.pk)


def _status_is(run: AgentRun, *statuses: str) -> Callable[[], bool]:
    """For ``wait_for``: whether ``run``'s saved status is one of ``statuses``.

    A function rather than a lambda in the loop, so each predicate holds its own run.
    """
    return lambda: run_status(run.run_id) in statuses


async def test_a_mention_ends_with_exactly_one_streamed_and_saved_reply(redis_stack: str) -> None:
    async with relay_stack(redis_stack):
        comment, listener = await post_watched_mention("@athena summarize this task")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.REPLIED, what="the reply")
        await wait_for(lambda: listener.events("run.reply", str(run.run_id)), what="the push")
        run = await sync_to_async(_fresh)(run)
        replies = await sync_to_async(_reply_comments)(run)
        assert len(replies) == 1
        reply = replies[0]
        assert reply.pk == run.reply_comment_id
        assert reply.author_id is None and reply.agent_id == "athena"
        assert "Q2 Roadmap Review" in reply.body
        streamed = listener.streamed_text(str(run.run_id))
        assert streamed == reply.body
        assert len(listener.events("run.delta", str(run.run_id))) > 1
        [pushed] = listener.events("run.reply", str(run.run_id))
        assert pushed["comment_id"] == str(reply.pk)
        assert "Q2 Roadmap Review" in pushed["html"]
        assert run.event_id and run.event_id.startswith("evt_")
        assert run.tokens_used is not None and run.model_name
        assert run.first_token_ms is not None
        assert run.payload is not None
        assert run.payload["relaybridge_run"] == str(run.run_id)


async def test_three_threads_streaming_at_once_stay_separate(redis_stack: str) -> None:
    async with relay_stack(redis_stack):
        watched = [
            await post_watched_mention(f"@athena summarize thread {n}", title=f"Task number {n}")
            for n in range(3)
        ]
        runs = [(await runs_for(comment))[0] for comment, _listener in watched]
        listeners = [listener for _comment, listener in watched]
        for run in runs:
            await wait_for(_status_is(run, Status.REPLIED), what="replies")
        for run, listener in zip(runs, listeners, strict=True):
            await wait_for(partial(listener.events, "run.reply", str(run.run_id)), what="pushes")
        for n, (run, listener) in enumerate(zip(runs, listeners, strict=True)):
            run = await sync_to_async(_fresh)(run)
            assert run.reply_comment is not None
            assert f"Task number {n}" in run.reply_comment.body
            assert listener.streamed_text(str(run.run_id)) == run.reply_comment.body
            others = {str(r.run_id) for r in runs} - {str(run.run_id)}
            assert not [m for m in listener.messages if m["event"].get("run") in others]


async def test_two_mentions_on_one_thread_are_sent_one_after_the_other(redis_stack: str) -> None:
    async with relay_stack(redis_stack):
        first = await post_mention("@athena first question")
        second = await post_mention("@athena second question", task=first.task)
        [run1], [run2] = await runs_for(first), await runs_for(second)
        for run in (run1, run2):
            await wait_for(_status_is(run, Status.REPLIED), what="replies")
        run1, run2 = await sync_to_async(_fresh)(run1), await sync_to_async(_fresh)(run2)
        # The second event went to Relay only after the first one's reply.
        assert run2.sent_at is not None and run1.finished_at is not None
        assert run2.sent_at >= run1.finished_at or (
            run2.accepted_at is not None and run2.accepted_at >= run1.finished_at
        )
        assert run1.reply_comment_id != run2.reply_comment_id


async def test_an_offline_agent_is_retried_with_backoff_and_then_fails(
    redis_stack: str, dispatch_timers: list[threading.Timer]
) -> None:
    async with relay_stack(redis_stack):
        # Listening before the post: the first push can come at once.
        comment, listener = await post_watched_mention("@offline are you there?")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.RETRYING, what="a retry")
        await wait_for(lambda: listener.events("run.error", str(run.run_id)), what="the push")
        [error] = listener.events("run.error", str(run.run_id))
        assert error["code"] == "AGENT_OFFLINE"
        assert error["retry_in"] == 2.0
        assert "offline — retrying in 2 s" in error["message"]
        # The scheduled retry runs (after 2 s) and fails the same way, now 4 s out. Its
        # timer thread is joined before the run is read again: a read beside its write
        # fails on SQLite's shared-cache test database.
        await wait_for(lambda: len(dispatch_timers) == 1, what="the 2 s retry's timer")
        await asyncio.to_thread(dispatch_timers[0].join, 10)
        assert not dispatch_timers[0].is_alive(), "the retry did not run within 10 s"
        await wait_for(
            lambda: (
                AgentRun.objects.get(pk=run.pk).attempts == 2
                and run_status(run.run_id) == Status.RETRYING
            ),
            within=8,
            what="the second attempt",
        )
        await wait_for(
            lambda: len(listener.events("run.error", str(run.run_id))) == 2, what="the push"
        )
        assert listener.events("run.error", str(run.run_id))[-1]["retry_in"] == 4.0

        # Fast-forward past the fourth retry: the fifth and last retry fails for good.
        # The 4 s retry it replaces must not fire beside it (nor be read beside, had it
        # begun already).
        await wait_for(lambda: len(dispatch_timers) == 2, what="the 4 s retry's timer")
        dispatch_timers[1].cancel()
        await asyncio.to_thread(dispatch_timers[1].join, 10)

        def after_five_attempts() -> None:
            AgentRun.objects.filter(pk=run.pk).update(attempts=5, status=Status.RETRYING)

        await sync_to_async(after_five_attempts)()
        from relaybridge.tasks import dispatch_run

        await sync_to_async(dispatch_run.delay)(str(run.run_id))
        await wait_for(lambda: run_status(run.run_id) == Status.FAILED, what="the failure")
        failed = await sync_to_async(_fresh)(run)
        assert failed.error_code == "AGENT_OFFLINE"
        assert "retrying" not in failed.error_message
        assert failed.reply_comment is None


async def test_a_stalled_agent_is_failed_by_the_watchdog_with_its_partial_text(
    redis_stack: str,
) -> None:
    async with relay_stack(redis_stack, stall_timeout=0.6):
        comment, listener = await post_watched_mention("@stall tell me everything")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.FAILED, what="the watchdog")
        await wait_for(lambda: listener.events("run.error", str(run.run_id)), what="the push")
        failed = await sync_to_async(_fresh)(run)
        assert failed.error_code == "RELAYBRIDGE_STALLED"
        assert failed.partial_text
        assert failed.partial_text == listener.streamed_text(str(run.run_id))
        [error] = listener.events("run.error", str(run.run_id))
        assert error["retry_in"] is None


class LockedForAWhile:
    """Calls through to ``real``, except while ``locked``: then it raises as a
    database does whose rows another transaction holds past the lock timeout."""

    def __init__(self, real: Any) -> None:
        self.real, self.locked, self.refused = real, False, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.locked:
            self.refused += 1
            raise OperationalError("database is locked")
        return self.real(*args, **kwargs)


async def test_a_run_still_streaming_is_not_failed_while_its_progress_writes_fail(
    redis_stack: str, monkeypatch: Any
) -> None:
    # The ledger's progress stops moving for several stall timeouts, the tokens do
    # not: the watchdog must not take the run for a stalled one.
    touches = LockedForAWhile(services.touch_runs)
    monkeypatch.setattr(services, "touch_runs", touches)
    long_message = " ".join(f"word{n}" for n in range(60))
    slow_athena = {"agent_delay_ms": {"athena": 40.0}}
    async with relay_stack(redis_stack, emulator=slow_athena, stall_timeout=0.4):
        comment, listener = await post_watched_mention(f"@athena summarize {long_message}")
        [run] = await runs_for(comment)
        run_id = str(run.run_id)
        await wait_for(lambda: run_status(run.run_id) == Status.STREAMING, what="streaming")
        touches.locked = True
        streamed_before = len(listener.streamed_text(run_id))
        # Four refused writes, gathered a quarter second apart: the ledger shows no
        # progress for well over the 0.4 s stall timeout.
        await wait_for(
            lambda: touches.refused >= 4 or run_status(run.run_id) != Status.STREAMING,
            what="progress writes refused",
        )
        touches.locked = False
        assert len(listener.streamed_text(run_id)) > streamed_before  # the tokens went on
        await wait_for(_status_is(run, Status.REPLIED, Status.FAILED), within=20, what="the end")
        done = await sync_to_async(_fresh)(run)
        assert (done.status, done.error_code) == (Status.REPLIED, "")
        assert done.reply_comment is not None and long_message in done.reply_comment.body


async def test_a_dropped_connection_is_reconnected_and_every_run_ends(redis_stack: str) -> None:
    # Frames Relay produces while no connection is open are lost (protocol §7):
    # those runs can only end through the watchdog, so its timeout is short here.
    stack = relay_stack(redis_stack, stall_timeout=2.0, emulator={"token_delay_ms": 20})
    async with stack as (worker, relay):
        comments = [
            await post_mention(f"@athena long answer {n}", title=f"Dropped {n}") for n in range(4)
        ]
        runs = [(await runs_for(c))[0] for c in comments]
        await wait_for(
            lambda: any(run_status(r.run_id) == Status.STREAMING for r in runs),
            what="streaming",
        )
        assert relay.drop_app_connections() >= 1
        for run in runs:
            await wait_for(
                _status_is(run, Status.REPLIED, Status.FAILED),
                within=20,
                what="every run to end",
            )
        assert worker.connection is not None and worker.connection.connections >= 2
        for run in runs:
            fresh = await sync_to_async(_fresh)(run)
            replies = await sync_to_async(_reply_comments)(fresh)
            assert len(replies) <= 1
            if fresh.status == Status.FAILED:
                assert fresh.error_code and fresh.error_message
            else:
                assert replies and replies[0].pk == fresh.reply_comment_id


async def test_a_bad_token_backs_off_instead_of_reconnecting_hot(redis_stack: str) -> None:
    from relaybridge.testing import running_emulator
    from relaybridge.worker.bridge import BridgeWorker, WorkerOptions
    from relaybridge.worker.leader import LocalLeaderLock

    async with running_emulator() as relay:
        options = WorkerOptions(url=relay.url, token="rlk_test_revoked", sweep_interval=1.0)
        worker = BridgeWorker(options, lock=LocalLeaderLock())
        running = asyncio.create_task(worker.run())
        await wait_for(lambda: worker.status.state == "auth_failed", what="the auth failure")
        connection = worker.connection
        assert connection is not None
        with pytest.raises(AssertionError, match="timed out"):  # no hot reconnect
            await wait_for(lambda: connection.connections > 1, within=1.5, what="a reconnect")
        assert worker.status.next_attempt_at is not None
        status: Any = await wait_for(
            lambda: (found := read_status()) and found.auth_failed and found, what="the record"
        )
        assert "rejected the app token" in (status.last_error or "")
        assert "rlk_test_revoked" not in repr(status.as_dict())
        worker.request_stop()
        await asyncio.wait_for(running, timeout=5)
    assert await sync_to_async(read_status)() is None


async def test_a_silent_connection_is_declared_dead_and_replaced(
    redis_stack: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A Relay that accepts the connection but never answers a ping is abandoned."""
    from websockets.asyncio.server import ServerConnection, serve

    from relaybridge.worker.bridge import BridgeWorker, WorkerOptions
    from relaybridge.worker.leader import LocalLeaderLock

    connections = 0

    async def silent(conn: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await conn.wait_closed()  # reads nothing, answers nothing

    async with serve(silent, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        options = WorkerOptions(
            url=f"ws://127.0.0.1:{port}/v1/ws/app",
            token="rlk_test_silent",
            heartbeat_interval=0.2,
            heartbeat_timeout=0.2,
        )
        worker = BridgeWorker(options, lock=LocalLeaderLock())
        running = asyncio.create_task(worker.run())
        await wait_for(lambda: connections >= 2, what="a second connection")
        assert "no answer from Relay within 0.2 s of a ping" in caplog.text
        worker.request_stop()
        await asyncio.wait_for(running, timeout=10)


async def test_an_agent_the_app_may_not_reach_fails_and_is_marked_unavailable(
    redis_stack: str,
) -> None:
    from relaybridge.agents import get_directory

    emulator = {"allowed_agents": {"test": frozenset({"athena"})}}
    async with relay_stack(redis_stack, emulator=emulator):
        comment = await post_mention("@klyve echo this")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.FAILED, what="the refusal")
        failed = await sync_to_async(_fresh)(run)
        assert failed.error_code == "NOT_ALLOWED"
        assert "not allowed to reach Klyve" in failed.error_message
        directory: Any = await sync_to_async(get_directory)()
        assert directory is not None
        marked = {a["agent_id"]: a["unavailable"] for a in directory["agents"]}
        # Discovery lists only reachable agents; klyve, refused, is marked if listed.
        assert marked.get("klyve", True) is True
        assert marked["athena"] is False


async def test_the_intake_outlives_channel_layer_errors(settings: Any, redis_stack: str) -> None:
    # A 1 s socket timeout under channels_redis's 5 s blocking read: every idle
    # receive fails, as it does with redis-py 8's defaults. The sweep is too slow
    # to matter here, so only the intake can bring the mention in.
    settings.CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [
        {"address": redis_stack, "socket_timeout": 1}
    ]
    async with relay_stack(redis_stack, sweep_interval=120.0):
        await asyncio.sleep(2.5)  # at least two failed receives
        comment = await post_mention("@athena summarize this task")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == Status.REPLIED, what="the reply")


def _sent_by_an_earlier_worker(seconds_ago: float) -> datetime:
    """A run of another task whose event an earlier worker sent ``seconds_ago`` (it
    ended since: this worker has nothing to ask again)."""
    from relaybridge import services

    run = accepted_run("Sent by the worker before")
    sent = timezone.now() - timedelta(seconds=seconds_ago)
    log = [{**run.attempt_log[-1], "sent": sent.isoformat()}]
    ended = {"status": Status.FAILED, "error_code": "AGENT_ERROR", "error_message": "ended"}
    AgentRun.objects.filter(pk=run.pk).update(attempt_log=log, **ended)
    assert services.recent_send_times(60) == [sent]
    return sent


async def test_a_worker_paces_by_the_sends_of_the_worker_before_it(redis_stack: str) -> None:
    # One event a minute, and the worker before this one sent one 57 s ago: Relay
    # would refuse a send before that one leaves its window.
    sent_before = await sync_to_async(_sent_by_an_earlier_worker)(57.0)
    one_a_minute = PlanLimits(events_per_minute=1, events_per_hour=None, max_in_flight=None)
    async with relay_stack(redis_stack, limits=one_a_minute):
        comment = await post_mention("@athena summarize this task")
        [run] = await runs_for(comment)
        await wait_for(_status_is(run, Status.REPLIED), within=20, what="the reply")
        done = await sync_to_async(_fresh)(run)
        assert done.sent_at is not None
        assert done.sent_at >= sent_before + timedelta(seconds=60)


async def test_a_worker_with_no_plan_limits_leaves_its_sends_out_of_a_later_plan(
    redis_stack: str,
) -> None:
    # A benchmark's unlimited plan (the emulator's): a worker paced to a real plan
    # later must not count what no window counted, or it would wait out the hour.
    from relaybridge import services

    unlimited = PlanLimits(events_per_minute=None, events_per_hour=None, max_in_flight=None)
    async with relay_stack(redis_stack, limits=unlimited):
        comment = await post_mention("@athena summarize this task")
        [run] = await runs_for(comment)
        await wait_for(_status_is(run, Status.REPLIED), within=20, what="the reply")
    done = await sync_to_async(_fresh)(run)
    assert done.sent_at is not None and done.attempt_log[-1]["unpaced"] is True
    assert await sync_to_async(services.recent_send_times)(60) == []
