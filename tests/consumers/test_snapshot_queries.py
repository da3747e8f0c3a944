"""A socket's snapshot costs a fixed number of queries, however many comments have runs:
one for the runs, and the permission lookups of whether its user may Stop them."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from project.tasks.models import Comment, Task
from relaybridge.adapters import get_adapter
from relaybridge.consumers import ThreadStreamConsumer
from relaybridge.models import AgentRun
from relaybridge.streams import SnapshotMessage

pytestmark = pytest.mark.django_db(transaction=True)


def thread_with_streaming_runs(count: int) -> Task:
    task = Task.objects.create(title=f"{count} comments")
    Comment.objects.bulk_create(Comment(task=task, body=f"comment {n}") for n in range(count))
    adapter = get_adapter()
    AgentRun.objects.bulk_create(
        AgentRun(
            comment=comment,
            agent_id="athena",
            thread_id=adapter.thread_id(task),
            thread_key=adapter.thread_key(task),
            status=AgentRun.Status.STREAMING,
        )
        for comment in Comment.objects.filter(task=task)
    )
    return task


@pytest.mark.parametrize("count", [5, 200])
def test_the_snapshot_takes_one_query(embedded: None, count: int) -> None:
    task = thread_with_streaming_runs(count)
    consumer = ThreadStreamConsumer()
    consumer.runs = {}
    consumer.control = {}
    consumer.thread_key = get_adapter().thread_key(task)
    # A watcher who asked none of the runs: whether they may Stop them costs the
    # permission backends' lookups, once per user (Django caches them on it).
    consumer.scope = {"user": get_user_model().objects.create_user("watcher")}

    # async_to_sync from this thread runs the consumer's database work on this
    # thread too (thread-sensitive), where the queries are captured.
    with CaptureQueriesContext(connection) as captured:
        snapshot: SnapshotMessage = async_to_sync(consumer._snapshot)()

    assert snapshot["type"] == "snapshot"
    assert len(snapshot["runs"]) == count
    assert {run["comment_id"] for run in snapshot["runs"]} == {
        str(pk) for pk in Comment.objects.filter(task=task).values_list("pk", flat=True)
    }
    runs = [query for query in captured if "relaybridge_agentrun" in query["sql"]]
    assert len(runs) == 1
    assert len(captured) - len(runs) <= 2  # the user's and their groups' permissions
    assert consumer.control == {run["run"]: False for run in snapshot["runs"]}
