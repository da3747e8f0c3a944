"""Every run transition is a conditional update that reports whether it happened."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from django.db.models import PositiveIntegerField
from django.utils import timezone

from project.tasks.models import Comment
from relaybridge import services
from relaybridge.models import AgentRun
from relaybridge.protocol.codes import ErrorCode
from relaybridge.services.by_key import ValueByKey

pytestmark = pytest.mark.django_db

Status = AgentRun.Status


@pytest.fixture
def comment(make_comment: Callable[..., Comment]) -> Comment:
    return make_comment("no mention; runs are made by hand here")


@pytest.fixture
def run(comment: Comment, user: Any) -> AgentRun:
    (created,) = services.create_runs(comment, ["athena"], user)
    return created


def status(run: AgentRun) -> str:
    run.refresh_from_db()
    return run.status


def streaming(run: AgentRun) -> AgentRun:
    assert services.claim_for_sending(run.run_id) is not None
    assert services.mark_sent(run.run_id)
    assert services.mark_accepted(run.run_id, f"evt_{run.pk}")
    assert services.record_first_token(run.run_id)
    run.refresh_from_db()
    return run


def test_create_runs_is_idempotent_and_capped(comment: Comment, settings: Any) -> None:
    settings.RELAYBRIDGE_MAX_MENTIONS = 3
    first = services.create_runs(comment, ["athena", "athena", "klyve"])
    assert [r.agent_id for r in first] == ["athena", "klyve"]
    assert services.create_runs(comment, ["athena", "klyve"]) == []
    more = services.create_runs(comment, ["slow", "sleepy"])
    assert [r.agent_id for r in more] == ["slow"]
    assert services.create_runs(comment, ["-bad", ""]) == []
    assert AgentRun.objects.filter(comment=comment).count() == 3


def test_create_runs_survives_a_concurrent_duplicate(comment: Comment, monkeypatch: Any) -> None:
    AgentRun.objects.create(comment=comment, agent_id="athena", thread_id="t", thread_key="k")
    # Pretend the existence check ran before the other process inserted its row.
    real_filter = AgentRun.objects.filter
    monkeypatch.setattr(
        AgentRun.objects,
        "filter",
        lambda *a, **kw: real_filter(pk=-1) if "comment" in kw else real_filter(*a, **kw),
    )
    created = services.create_runs(comment, ["athena", "klyve"])
    assert [r.agent_id for r in created] == ["klyve"]


def test_happy_path(run: AgentRun) -> None:
    claimed = services.claim_for_sending(run.run_id)
    assert claimed is not None and claimed.status == Status.SENDING and claimed.attempts == 1
    assert services.store_payload(run.run_id, {"event": "comment.mention"})
    assert services.mark_sent(run.run_id)
    assert services.mark_accepted(run.run_id, "evt_k9p2m")
    assert services.record_first_token(run.run_id)
    assert services.touch(run.run_id)
    reply = services.record_reply(
        run.run_id,
        "Here is the summary.",
        {"tokens_used": 1500, "model": "claude-sonnet", "latency_ms": 2300},
    )
    run.refresh_from_db()
    assert run.status == Status.REPLIED
    assert run.event_id == "evt_k9p2m"
    assert run.payload == {"event": "comment.mention"}
    assert (run.tokens_used, run.model_name, run.relay_latency_ms) == (1500, "claude-sonnet", 2300)
    assert run.first_token_ms is not None and run.first_token_at is not None
    assert run.sent_at and run.accepted_at and run.finished_at
    assert run.reply_comment == reply
    assert reply.agent_id == "athena" and reply.author is None
    assert reply.body == "Here is the summary."
    assert reply.task_id == run.comment.task_id


def test_touch_runs_touches_the_active_runs_of_many_at_once(comment: Comment, user: Any) -> None:
    active, ended, queued = services.create_runs(comment, ["athena", "klyve", "slow"], user)
    streaming(active)
    streaming(ended)
    assert services.mark_stopped(ended.run_id)
    long_ago = timezone.now() - timedelta(minutes=5)
    AgentRun.objects.filter(pk__in=[active.pk, ended.pk, queued.pk]).update(updated_at=long_ago)

    touched = services.touch_runs([str(active.run_id), ended.run_id, queued.run_id, "no-uuid"])

    assert touched == {str(active.run_id)}
    fresh = dict(AgentRun.objects.values_list("pk", "updated_at"))
    assert fresh[active.pk] > long_ago
    assert fresh[ended.pk] == fresh[queued.pk] == long_ago
    assert services.touch_runs([active.run_id]) == {active.run_id}
    assert services.touch_runs([]) == set()


def test_losing_races_return_false(run: AgentRun) -> None:
    assert services.claim_for_sending(run.run_id) is not None
    assert services.claim_for_sending(run.run_id) is None
    assert not services.record_first_token(run.run_id)  # not accepted yet
    assert services.mark_accepted(run.run_id, "evt_a")
    assert not services.mark_accepted(run.run_id, "evt_b")
    assert not services.mark_sent(run.run_id)
    assert not services.store_payload(run.run_id, {})
    assert services.record_first_token(run.run_id)
    assert not services.record_first_token(run.run_id)
    assert not services.retry_run(run.run_id)  # still active
    assert not services.claim_for_sending("not-a-uuid")
    assert not services.mark_sent("not-a-uuid")
    assert not services.record_first_token("not-a-uuid")


def test_first_tokens_of_many_runs_are_recorded_together(
    comment: Comment, django_assert_max_num_queries: Any
) -> None:
    runs = services.create_runs(comment, ["athena", "klyve", "mnemo", "orin"])
    for n, run in enumerate(runs):
        assert services.claim_for_sending(run.run_id) is not None
        if n < 3:
            assert services.mark_accepted(run.run_id, f"evt_{n}")
    athena, klyve, mnemo, orin = runs
    assert services.mark_stopped(mnemo.run_id, "changed my mind")
    sent = {run.run_id: AgentRun.objects.get(pk=run.pk).sent_at for run in runs}
    arrivals: dict[services.RunRef, datetime] = {
        str(athena.run_id): timezone.now() + timedelta(milliseconds=40),
        klyve.run_id: timezone.now() + timedelta(milliseconds=90),
        str(mnemo.run_id): timezone.now(),  # stopped: stays stopped
        str(orin.run_id): timezone.now(),  # never accepted
        "not-a-uuid": timezone.now(),
    }
    with django_assert_max_num_queries(2):
        moved = services.record_first_tokens(arrivals)

    assert moved == {str(athena.run_id), klyve.run_id}
    for run, key in ((athena, str(athena.run_id)), (klyve, klyve.run_id)):
        run.refresh_from_db()
        assert run.status == Status.STREAMING
        assert run.first_token_at == arrivals[key]
        started = sent[run.run_id] or run.queued_at
        expected_ms = int((arrivals[key] - started).total_seconds() * 1000)
        assert run.first_token_ms == expected_ms
    assert status(mnemo) == Status.STOPPED and status(orin) == Status.SENDING
    assert services.record_first_tokens(arrivals) == set()  # nothing moves twice
    assert services.record_first_tokens({}) == set()


def test_value_by_key_gives_each_row_its_own_value_and_the_others_null(
    make_comment: Callable[..., Comment],
) -> None:
    comment = make_comment("rows updated by key")
    rows = [
        AgentRun.objects.create(
            comment=comment, agent_id=f"agent{n}", thread_id=f"t{n}", thread_key=f"k{n}"
        )
        for n in range(12)
    ]
    chosen = {row.run_id: 1000 + n for n, row in enumerate(rows[:10])}
    ours = AgentRun.objects.filter(pk__in=[row.pk for row in rows])
    assert ours.update(first_token_ms=ValueByKey("run_id", chosen, PositiveIntegerField())) == 12
    written = dict(ours.values_list("run_id", "first_token_ms"))
    assert written == {**chosen, rows[10].run_id: None, rows[11].run_id: None}
    with pytest.raises(ValueError, match="at least one value"):
        ValueByKey("run_id", {}, PositiveIntegerField())


def test_duplicate_event_id_is_refused(run: AgentRun, comment: Comment) -> None:
    (other,) = services.create_runs(comment, ["klyve"])
    for r in (run, other):
        services.claim_for_sending(r.run_id)
    assert services.mark_accepted(run.run_id, "evt_same")
    assert not services.mark_accepted(other.run_id, "evt_same")
    assert status(other) == Status.SENDING


def test_record_reply_happens_exactly_once(run: AgentRun) -> None:
    streaming(run)
    first = services.record_reply(run.run_id, "one")
    second = services.record_reply(run.run_id, "two")
    assert first is not None and second is None
    assert Comment.objects.filter(agent_id="athena").count() == 1


def test_record_reply_failure_leaves_the_run_unchanged(run: AgentRun, monkeypatch: Any) -> None:
    streaming(run)
    from relaybridge.adapters import DefaultCommentAdapter

    def broken(self: Any, run: AgentRun, text: str) -> None:
        raise RuntimeError("host database says no")

    monkeypatch.setattr(DefaultCommentAdapter, "save_reply", broken)
    with pytest.raises(RuntimeError):
        services.record_reply(run.run_id, "text")
    assert status(run) == Status.STREAMING
    monkeypatch.undo()
    assert services.record_reply(run.run_id, "text") is not None


def test_late_reply_after_failure_is_saved_but_not_after_stop(
    run: AgentRun, comment: Comment
) -> None:
    streaming(run)
    assert services.record_error(
        run.run_id, ErrorCode.STALLED, "no answer", None, partial_text="Hal"
    )
    assert status(run) == Status.FAILED and run.partial_text == "Hal"
    assert services.record_reply(run.run_id, "Hello") is not None
    assert status(run) == Status.REPLIED and run.partial_text == ""

    (other,) = services.create_runs(comment, ["klyve"])
    streaming(other)
    assert services.mark_stopped(other.run_id, "partial")
    assert services.record_reply(other.run_id, "late") is None
    other.refresh_from_db()
    assert (other.status, other.partial_text) == (Status.STOPPED, "partial")


def test_retryable_error_schedules_a_dispatch(
    run: AgentRun, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    streaming(run)
    scheduled: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        services.runs,
        "_dispatch_later",
        lambda run_id, countdown: scheduled.append((run_id, countdown)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        assert services.record_error(run.run_id, "AGENT_OFFLINE", "Agent not connected", 4)
    run.refresh_from_db()
    assert run.status == Status.RETRYING and run.error_code == "AGENT_OFFLINE"
    assert run.next_attempt_at is not None
    assert 3 < (run.next_attempt_at - timezone.now()).total_seconds() <= 4
    assert scheduled == [(str(run.run_id), 4.0)]
    # The retry claims the run again.
    claimed = services.claim_for_sending(run.run_id)
    assert claimed is not None and claimed.attempts == 2 and claimed.event_id is None


def test_retry_with_a_broker_uses_a_countdown(
    run: AgentRun, django_capture_on_commit_callbacks: Any, monkeypatch: Any
) -> None:
    from project.celery import app
    from relaybridge.tasks import dispatch_run

    app.conf.task_always_eager = False
    calls: list[Any] = []
    monkeypatch.setattr(
        type(cast(Any, dispatch_run)._get_current_object()),
        "apply_async",
        lambda self, args, countdown=None: calls.append((args, countdown)),
    )
    services.claim_for_sending(run.run_id)
    with django_capture_on_commit_callbacks(execute=True):
        services.record_error(run.run_id, "RATE_LIMITED", "slow down", 30)
    assert calls == [((str(run.run_id),), 30.0)]


def test_terminal_error_fails_and_redacts(run: AgentRun) -> None:
    services.claim_for_sending(run.run_id)
    assert services.record_error(
        run.run_id, "INVALID_MESSAGE", "bad frame near rlk_portal_s3cr3t", None
    )
    run.refresh_from_db()
    assert run.status == Status.FAILED and run.finished_at is not None
    assert "s3cr3t" not in run.error_message
    assert not services.record_error(run.run_id, "X", "again", None)


def test_stop_then_retry(run: AgentRun, django_capture_on_commit_callbacks: Any) -> None:
    streaming(run)
    assert services.mark_stopped(run.run_id, "half an answer")
    assert not services.mark_stopped(run.run_id, "")
    with django_capture_on_commit_callbacks() as callbacks:
        assert services.retry_run(run.run_id)
        assert not services.retry_run(run.run_id)
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert run.status == Status.QUEUED
    assert (run.attempts, run.event_id, run.partial_text, run.finished_at) == (0, None, "", None)
    # The retried run may get a new event id.
    streaming(run)
    assert AgentRun.objects.get(pk=run.pk).event_id == f"evt_{run.pk}"


def test_sweeps(comment: Comment) -> None:
    runs = services.create_runs(comment, ["athena", "klyve", "slow", "sleepy"])
    queued, sending, accepted, retrying = runs
    services.claim_for_sending(sending.run_id)
    services.claim_for_sending(accepted.run_id)
    services.mark_accepted(accepted.run_id, "evt_x")
    services.claim_for_sending(retrying.run_id)
    services.record_error(retrying.run_id, "AGENT_OFFLINE", "offline", 1, schedule=False)

    assert list(services.runs_to_sweep()) == [AgentRun.objects.get(pk=sending.pk)]
    assert not services.runs_to_sweep(older_than=60).exists()
    assert not services.stalled_runs(120).exists()
    assert not services.runs_to_redispatch(60).exists()

    long_ago = timezone.now() - timedelta(minutes=10)
    AgentRun.objects.update(updated_at=long_ago)
    AgentRun.objects.filter(pk=retrying.pk).update(next_attempt_at=long_ago)
    assert set(services.stalled_runs(timedelta(seconds=120))) == {accepted}
    assert set(services.runs_to_redispatch(60)) == {queued, retrying}
    services.mark_sent(sending.run_id)
    assert not services.runs_to_sweep().exists()
    assert set(services.active_runs(queued.thread_key)) == set(runs)


def test_get_run(run: AgentRun) -> None:
    assert services.get_run(str(run.run_id)) == run
    assert services.get_run("nope") is None


@pytest.mark.django_db(transaction=True)
def test_eager_retries_keep_their_backoff_in_process(
    make_comment: Callable[..., Comment], dispatch_timers: list[threading.Timer]
) -> None:
    # Without a broker (the embedded default) a countdown is kept by a timer thread.
    # The test joins that thread before it reads the run: polling while the thread
    # writes would race on SQLite's shared-cache table locks ("database table is
    # locked").
    (run,) = services.create_runs(make_comment("plain"), ["athena"])
    assert services.claim_for_sending(run.run_id) is not None
    assert services.record_error(run.run_id, "AGENT_OFFLINE", "offline", 0.2)
    assert len(dispatch_timers) == 1
    dispatch_timers[0].join(timeout=10)
    assert not dispatch_timers[0].is_alive(), "the retry timer did not finish within 10 s"
    run.refresh_from_db()
    assert run.status == Status.SENDING and run.attempts == 2


def test_a_broker_outage_does_not_fail_the_request(
    run: AgentRun, django_capture_on_commit_callbacks: Any, monkeypatch: Any, caplog: Any
) -> None:
    from project.celery import app
    from relaybridge.tasks import dispatch_run

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    app.conf.task_always_eager = False
    monkeypatch.setattr(type(cast(Any, dispatch_run)._get_current_object()), "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        services.queue_dispatch(run.run_id)
    assert "left for the sweep" in caplog.text
    assert status(run) == Status.QUEUED


def test_a_claim_whose_dispatch_died_is_released_once_idle(comment: Comment) -> None:
    """dispatch_run claimed the run and died before storing the payload (Celery killed
    mid-task): after ``older_than`` the run goes back to ``queued``, once, uncounted."""
    died, slow, stored = services.create_runs(comment, ["athena", "klyve", "slow"])
    for run in (died, slow, stored):
        assert services.claim_for_sending(run.run_id) is not None
    assert services.store_payload(stored.run_id, {"message": "hi"})

    # A dispatch still at work (recent claim) keeps it.
    assert not services.abandoned_claims(60).exists()
    assert not services.release_abandoned_claim(died.run_id, 60)

    AgentRun.objects.update(updated_at=timezone.now() - timedelta(minutes=10))
    AgentRun.objects.filter(pk=slow.pk).update(updated_at=timezone.now())
    assert list(services.abandoned_claims(60)) == [AgentRun.objects.get(pk=died.pk)]
    assert services.release_abandoned_claim(died.run_id, 60)
    assert not services.release_abandoned_claim(died.run_id, 60)  # conditional: once
    assert not services.release_abandoned_claim(stored.run_id, 60)  # has its payload
    died.refresh_from_db()
    assert (died.status, died.attempts) == (Status.QUEUED, 0)
    assert services.claim_for_sending(died.run_id) is not None


@pytest.mark.parametrize(
    ("tokens_used", "latency_ms", "stored"),
    [
        (10**20, -5, (2**31 - 1, 0)),
        (float("inf"), float("nan"), (None, None)),
        (12.7, "7", (12, None)),
        (True, None, (None, None)),
    ],
)
def test_reply_metadata_is_bounded_to_its_columns_and_the_reply_kept(
    run: AgentRun, tokens_used: Any, latency_ms: Any, stored: tuple[Any, Any]
) -> None:
    AgentRun.objects.filter(pk=run.pk).update(status=Status.STREAMING)
    metadata = {"tokens_used": tokens_used, "latency_ms": latency_ms, "model": "m rla_x_1 " * 30}
    assert services.record_reply(run.run_id, "kept", metadata) is not None
    run.refresh_from_db()
    assert run.status == Status.REPLIED
    assert (run.tokens_used, run.relay_latency_ms) == stored
    assert run.model_name.startswith("m [redacted] m [redacted]") and len(run.model_name) == 200
    assert "rla_" not in run.model_name


def test_every_send_stays_in_the_ledger_for_the_pacing_of_the_next_worker(
    run: AgentRun,
) -> None:
    assert services.claim_for_sending(run.run_id) is not None
    assert services.mark_sent_many([run.run_id, "not-a-run-id"]) == 1
    first_send = services.recent_send_times(60)
    assert len(first_send) == 1
    # Lost and asked again: the first attempt's send still counts.
    services.record_error(run.run_id, ErrorCode.CONNECTION_LOST, "lost", 0, schedule=False)
    assert services.claim_for_sending(run.run_id) is not None
    assert services.mark_sent(run.run_id)
    run.refresh_from_db()
    assert [("sent" in entry) for entry in run.attempt_log] == [True, True]
    sends = services.recent_send_times(60)
    assert len(sends) == 2 and sends[0] == first_send[0] and sends == sorted(sends)
    assert run.sent_at == sends[1]


def test_a_send_made_with_no_plan_limits_never_counts_against_a_plan(run: AgentRun) -> None:
    # An emulator's unlimited plan (a benchmark): a worker paced to a real plan later
    # must not wait out an hour of events no window counted.
    assert services.claim_for_sending(run.run_id) is not None
    assert services.mark_sent(run.run_id, windowed=False)
    run.refresh_from_db()
    assert run.sent_at is not None and run.attempt_log[-1]["unpaced"] is True
    assert services.recent_send_times(60) == []
    # The same attempt sent again under a plan counts, and is no longer marked.
    assert services.mark_sent(run.run_id)
    run.refresh_from_db()
    assert "unpaced" not in run.attempt_log[-1]
    assert services.recent_send_times(60) == [run.sent_at]
