"""The loop backstop: runs started by agents' replies are capped per thread and window.

Over the cap a run is created ``refused`` with its reason, never sent, and shown
under its comment.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import close_old_connections, connection, transaction
from django.template import Context, Template
from django.utils import timezone

from project.tasks.models import Comment, Task
from relaybridge import services, streams
from relaybridge.models import AgentRun
from relaybridge.protocol.codes import ErrorCode
from tests.stacks import stream_layer

from .conftest import drain

MakeComment = Callable[..., Comment]
Status = AgentRun.Status
REASON = "Not sent: too many agent replies in this thread in the last 10 minutes."


@pytest.fixture
def hops(settings: Any) -> Any:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_DEPTH = 5
    settings.RELAYBRIDGE_AGENT_HOP_LIMIT = 2
    settings.RELAYBRIDGE_AGENT_HOP_WINDOW = 600
    return settings


def agent_asks(make_comment: MakeComment, text: str) -> list[AgentRun]:
    """A comment by Athena outside a run (one hop), and the runs it started."""
    comment = make_comment(text, agent_id="athena")
    return list(AgentRun.objects.filter(comment=comment).order_by("id"))


def render_runs(comment: Comment) -> str:
    template = Template("{% load relaybridge %}{% relaybridge_runs comment %}")
    return template.render(Context({"comment": comment}))


@pytest.mark.django_db
def test_hops_over_the_limit_are_refused_with_the_reason_and_never_sent(
    hops: Any, make_comment: MakeComment, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        (first,) = agent_asks(make_comment, "@klyve one")
        (second,) = agent_asks(make_comment, "@klyve two")
    drain()
    with django_capture_on_commit_callbacks(execute=True):
        (third,) = agent_asks(make_comment, "@klyve three")

    for sent in (first, second):
        sent.refresh_from_db()
        assert sent.status == Status.SENDING
    assert third.status == Status.REFUSED
    assert (third.error_code, third.error_message) == (ErrorCode.HOP_LIMIT, REASON)
    assert third.finished_at is not None and third.hop_depth == 1
    assert drain() == []  # nothing handed to the relay worker
    assert services.claim_for_sending(third.run_id) is None  # and it cannot be claimed
    assert not services.retry_run(third.run_id)

    html = render_runs(third.comment)
    assert f'data-relaybridge-run="{third.run_id}"' in html
    assert 'data-status="refused"' in html
    assert REASON in html
    assert "Retry" not in html and "Stop" not in html


@pytest.mark.django_db
def test_one_comment_asking_more_agents_than_the_room_left(
    hops: Any, make_comment: MakeComment
) -> None:
    runs = agent_asks(make_comment, "@klyve @slow @sleepy all of you")
    assert [(run.agent_id, run.status) for run in runs] == [
        ("klyve", Status.QUEUED),
        ("slow", Status.QUEUED),
        ("sleepy", Status.REFUSED),
    ]


@pytest.mark.django_db
def test_people_old_hops_refused_hops_and_other_threads_do_not_count(
    hops: Any, make_comment: MakeComment, user: Any
) -> None:
    for _ in range(3):
        make_comment("@klyve a person asks")  # hop depth 0: never capped
    assert not AgentRun.objects.filter(status=Status.REFUSED).exists()
    old = agent_asks(make_comment, "@klyve long ago") + agent_asks(make_comment, "@klyve again")
    AgentRun.objects.filter(pk__in=[run.pk for run in old]).update(
        queued_at=timezone.now() - timedelta(seconds=601)
    )
    other = Task.objects.create(title="Elsewhere")
    for _ in range(2):
        agent_asks(lambda body, **f: make_comment(body, task=other, **f), "@klyve there")

    assert [run.status for run in agent_asks(make_comment, "@klyve now")] == [Status.QUEUED]
    assert [run.status for run in agent_asks(make_comment, "@klyve now")] == [Status.QUEUED]
    refused = agent_asks(make_comment, "@klyve once more")
    assert [run.status for run in refused] == [Status.REFUSED]
    # Refused runs take no room: the next one is refused for the two sent, not for it.
    assert [run.status for run in agent_asks(make_comment, "@klyve and")] == [Status.REFUSED]


@pytest.mark.django_db
def test_the_limit_can_be_turned_off(hops: Any, make_comment: MakeComment) -> None:
    hops.RELAYBRIDGE_AGENT_HOP_LIMIT = None
    for n in range(4):
        assert [r.status for r in agent_asks(make_comment, f"@klyve {n}")] == [Status.QUEUED]


@pytest.mark.django_db
def test_the_window_reads_as_people_say_it(hops: Any, make_comment: MakeComment) -> None:
    hops.RELAYBRIDGE_AGENT_HOP_LIMIT = 0
    hops.RELAYBRIDGE_AGENT_HOP_WINDOW = 90
    (run,) = agent_asks(make_comment, "@klyve hi")
    assert run.error_message == (
        "Not sent: too many agent replies in this thread in the last 90 seconds."
    )
    hops.RELAYBRIDGE_AGENT_HOP_WINDOW = 3600
    (run,) = agent_asks(make_comment, "@klyve hi")
    assert run.error_message.endswith("in the last 1 hour.")


@pytest.mark.django_db
def test_a_refused_run_is_pushed_to_the_thread_once_committed(
    hops: Any, make_comment: MakeComment, task: Task, django_capture_on_commit_callbacks: Any
) -> None:
    hops.RELAYBRIDGE_AGENT_HOP_LIMIT = 0
    layer = stream_layer()
    group = streams.group_name_for_thread(f"tasks.task.{task.pk}")

    async def listen() -> str:
        channel: str = await layer.new_channel()
        await layer.group_add(group, channel)
        return channel

    channel = async_to_sync(listen)()
    with django_capture_on_commit_callbacks(execute=True):
        (run,) = agent_asks(make_comment, "@klyve hi")

    async def receive() -> dict[str, Any]:
        received: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), 2)
        return received

    message = async_to_sync(receive)()
    event = message["event"]
    assert (event["type"], event["run"], event["status"]) == (
        "run.status",
        str(run.run_id),
        "refused",
    )
    assert event["message"] == REASON


@pytest.mark.django_db(transaction=True)
def test_two_hops_at_once_cannot_both_slip_past(hops: Any, task: Task) -> None:
    """Two hops in one thread, in two connections: the second waits for the first's lock."""
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent writers (PostgreSQL); SQLite serializes writers itself")
    hops.RELAYBRIDGE_AGENT_HOP_LIMIT = 1
    comments = [
        Comment.objects.create(task=task, agent_id="athena", body=f"no mention {n}")
        for n in range(2)
    ]
    first_created = threading.Event()
    release_first = threading.Event()
    outcomes: dict[int, list[str]] = {}
    errors: list[BaseException] = []

    def hop(n: int) -> None:
        try:
            with transaction.atomic():
                runs = services.create_runs(comments[n], ["klyve"], hop_depth=1)
                outcomes[n] = [run.status for run in runs]
                if n == 0:
                    first_created.set()
                    assert release_first.wait(10), "the test never released the first hop"
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    first = threading.Thread(target=hop, args=(0,))
    first.start()
    assert first_created.wait(10)
    second = threading.Thread(target=hop, args=(1,))
    second.start()
    try:
        # The second hop must be waiting on the first's lock, not counting past it.
        deadline = timezone.now() + timedelta(seconds=10)
        while not _a_backend_waits_on_a_lock():
            assert timezone.now() < deadline, "the second hop never waited for the first"
            threading.Event().wait(0.05)
        assert 1 not in outcomes
    finally:
        release_first.set()
        first.join(10)
        second.join(10)
    assert not errors, errors
    assert outcomes == {0: [Status.QUEUED], 1: [Status.REFUSED]}


def _a_backend_waits_on_a_lock() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        (waiting,) = cursor.fetchone()
    return bool(waiting)


@pytest.mark.django_db
def test_two_agents_asking_each_other_forever_are_stopped_by_the_backstop(
    hops: Any, make_comment: MakeComment
) -> None:
    hops.RELAYBRIDGE_AGENT_HOP_DEPTH = 100  # a depth cap too generous to stop anything
    hops.RELAYBRIDGE_AGENT_HOP_LIMIT = 3
    run = AgentRun.objects.get(comment=make_comment("@athena talk to klyve"))
    chain = []
    for turn in range(10):
        other = "klyve" if run.agent_id == "athena" else "athena"
        assert services.claim_for_sending(run.run_id)
        assert services.mark_accepted(run.run_id, f"evt_{turn}")
        reply = services.record_reply(run.run_id, f"@{other} your turn")
        run = AgentRun.objects.get(comment=reply)
        chain.append((run.hop_depth, run.status))
        if run.status == Status.REFUSED:
            break
    assert chain == [
        (1, Status.QUEUED),
        (2, Status.QUEUED),
        (3, Status.QUEUED),
        (4, Status.REFUSED),
    ]
