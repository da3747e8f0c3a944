"""dispatch_run: claim, payload, hand-off to ``relaybridge.outbound`` -- exactly once."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from channels.layers import get_channel_layer
from django.db import connection
from django.utils import timezone

from project.celery import app as project_celery_app
from project.tasks.models import Comment
from relaybridge import services
from relaybridge.models import AgentRun
from relaybridge.protocol.codes import ErrorCode
from relaybridge.tasks import dispatch_run

from .conftest import drain

MakeComment = Callable[..., Comment]


@pytest.fixture
def redis_layer(settings: Any, redis_url: str) -> Iterator[None]:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": redis_url, "socket_timeout": 30}],
                "prefix": f"rbtest-{uuid.uuid4().hex[:12]}",
            },
        }
    }
    settings.RELAYBRIDGE_STREAM_LAYER = "default"
    yield
    layer = get_channel_layer()
    assert layer is not None
    async_to_sync(layer.flush)()


def queued_run(make_comment: MakeComment) -> AgentRun:
    # Outside django_capture_on_commit_callbacks the dispatch never runs on its own.
    comment = make_comment("@athena summarize")
    return AgentRun.objects.get(comment=comment)


@pytest.mark.django_db
def test_duplicate_delivery_sends_once(make_comment: MakeComment) -> None:
    run = queued_run(make_comment)
    assert dispatch_run(str(run.run_id)) == "sent"
    assert dispatch_run(str(run.run_id)) == "skipped"
    assert dispatch_run.apply((str(run.run_id),)).get() == "skipped"
    assert drain() == [{"type": "relaybridge.dispatch", "run_id": str(run.run_id)}]
    run.refresh_from_db()
    assert run.attempts == 1 and run.status == AgentRun.Status.SENDING


@pytest.mark.django_db
def test_a_dispatch_killed_mid_task_is_redone_by_the_sweep(
    make_comment: MakeComment, settings: Any
) -> None:
    """A run claimed by a dispatch_run that died (no payload) used to stay ``sending``
    forever: redelivered copies found it claimed, and no sweep looked at it."""
    from relaybridge.worker import database

    run = queued_run(make_comment)
    assert services.claim_for_sending(run.run_id) is not None  # ...and then the worker died
    assert dispatch_run(str(run.run_id)) == "skipped"  # a redelivery finds it claimed
    assert database.overdue_run_ids(5.0) == []  # a dispatch at work keeps its claim
    AgentRun.objects.filter(pk=run.pk).update(updated_at=timezone.now() - timedelta(seconds=6))
    # The sweep claims it again itself and sends it straight away, not through Celery.
    assert database.overdue_run_ids(5.0) == [str(run.run_id)]
    assert services.prepare_dispatch(run.run_id) == "ready"
    run.refresh_from_db()
    assert run.status == AgentRun.Status.SENDING and run.payload
    assert run.attempts == 1
    assert drain() == []


@pytest.mark.django_db
def test_dispatch_is_acks_late() -> None:
    assert dispatch_run.acks_late is True
    assert dispatch_run.name == "relaybridge.dispatch_run"


@pytest.mark.django_db
def test_unknown_run_is_skipped() -> None:
    assert dispatch_run(str(uuid.uuid4())) == "skipped"
    assert dispatch_run("garbage") == "skipped"


@pytest.mark.django_db
def test_a_refused_layer_send_leaves_the_run_for_the_sweep(
    make_comment: MakeComment, monkeypatch: Any, caplog: Any
) -> None:
    class FullLayer:
        async def send(self, channel: str, message: dict[str, Any]) -> None:
            raise RuntimeError("channel full")

    monkeypatch.setattr("relaybridge.sync_sends.get_channel_layer", lambda alias: FullLayer())
    run = queued_run(make_comment)
    assert dispatch_run(str(run.run_id)) == "pending"
    run.refresh_from_db()
    assert run.status == AgentRun.Status.SENDING and run.payload is not None
    assert list(services.runs_to_sweep()) == [run]
    assert "waits for the sweep" in caplog.text

    monkeypatch.setattr("relaybridge.sync_sends.get_channel_layer", lambda alias: None)
    other = queued_run(lambda body: make_comment(body.replace("athena", "klyve")))
    assert dispatch_run(str(other.run_id)) == "pending"


@pytest.mark.django_db
def test_a_payload_that_cannot_be_built_fails_visibly(
    make_comment: MakeComment, monkeypatch: Any
) -> None:
    def explode(run: AgentRun) -> dict[str, Any]:
        raise LookupError("thread vanished")

    monkeypatch.setattr("relaybridge.services.dispatch.build_payload", explode)
    run = queued_run(make_comment)
    assert dispatch_run(str(run.run_id)) == "failed"
    run.refresh_from_db()
    assert (run.status, run.error_code) == (AgentRun.Status.FAILED, ErrorCode.PAYLOAD_ERROR)
    assert run.error_message == "The mention could not be prepared for the agent"
    assert drain() == []


@pytest.mark.redis
@pytest.mark.django_db
def test_message_lands_on_outbound_through_the_redis_layer(
    redis_layer: None, make_comment: MakeComment, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        comment = make_comment("@athena and @klyve, please")
    runs = AgentRun.objects.filter(comment=comment)
    for run in runs:  # a redelivery changes nothing
        assert dispatch_run(str(run.run_id)) == "skipped"
    messages = drain()
    assert sorted(m["run_id"] for m in messages) == sorted(str(r.run_id) for r in runs)
    assert all(m["type"] == "relaybridge.dispatch" for m in messages)


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_round_trip_through_the_redis_broker_and_a_celery_worker(
    redis_layer: None, redis_url: str, make_comment: MakeComment
) -> None:
    broker_app = Celery("relaybridge-test", broker=redis_url, set_as_current=False)
    broker_app.conf.update(
        task_always_eager=False,
        task_default_queue=f"relaybridge-test-{uuid.uuid4().hex[:12]}",
        worker_hijack_root_logger=False,
    )
    # Created directly: in autocommit a mention would be dispatched (eagerly) at once.
    (run,) = services.create_runs(make_comment("please summarize"), ["athena"])
    outcomes: list[Any] = []

    def finished(sender: Any = None, retval: Any = None, args: Any = (), **kwargs: Any) -> None:
        # Only this run's dispatches: a task another test queued may finish in this
        # process meanwhile (an eager retry on a timer thread, for one).
        if getattr(sender, "name", "") == "relaybridge.dispatch_run" and list(args or ()) == [
            str(run.run_id)
        ]:
            outcomes.append(retval)

    task_postrun.connect(finished, weak=False)
    try:
        with start_worker(broker_app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            broker_app.set_current()
            try:
                dispatch_run.delay(str(run.run_id))
                dispatch_run.delay(str(run.run_id))  # a duplicate delivery
            finally:
                project_celery_app.set_current()
            deadline = time.monotonic() + 20
            while len(outcomes) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        task_postrun.disconnect(finished)
        # start_worker also made the test app the process-wide default; tasks
        # called later from other threads must reach the project's app again.
        project_celery_app.set_default()
        project_celery_app.set_current()
    assert sorted(outcomes) == ["sent", "skipped"]
    run.refresh_from_db()
    assert run.status == AgentRun.Status.SENDING and run.payload is not None
    assert drain() == [{"type": "relaybridge.dispatch", "run_id": str(run.run_id)}]


def test_services_never_import_the_tasks_built_on_them() -> None:
    """tasks.py is built on services; services queue ``dispatch_run`` by its name."""
    import ast
    from pathlib import Path

    import relaybridge.services

    imports = []
    for module in Path(relaybridge.services.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "", *(alias.name for alias in node.names)]
                imports += [f"{module.name}: {name}" for name in names if "tasks" in name]
    assert imports == []


@pytest.mark.django_db(transaction=True)
def test_a_connection_kept_across_tasks_that_broke_is_replaced_before_the_dispatch(
    make_comment: MakeComment, redis_layer: None
) -> None:
    # CELERY_DB_REUSE_MAX keeps the worker's connection from task to task; a database
    # restart leaves it dead, and Celery never looks at it again.
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no server connection to lose (CI runs this on PostgreSQL)")
    run = queued_run(make_comment)  # dispatched at its commit (no test transaction here)
    # Lost with the connection to Relay: asked again by the next dispatch.
    services.record_error(run.run_id, ErrorCode.CONNECTION_LOST, "lost", 0, schedule=False)
    connection.ensure_connection()
    dead = connection.connection
    dead.close()  # what a server that went away leaves behind
    assert dispatch_run(str(run.run_id)) == "sent"
    assert connection.connection is not dead
    run.refresh_from_db()
    assert run.status == AgentRun.Status.SENDING and run.payload
