"""A new run's first status reaches every page of its thread at once: whether each
viewer may press Stop and Retry is answered for all of them from one query."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from project.tasks.models import Task
from relaybridge import streams
from relaybridge.models import AgentRun

from .conftest import create_run, watching

pytestmark = pytest.mark.django_db(transaction=True)


def test_pages_told_of_a_new_run_together_ask_whether_they_may_stop_it_in_one_query(
    embedded: None,
) -> None:
    users = get_user_model().objects
    asker = users.create_user("asker")
    staff = users.create_user("staff", is_staff=True)
    others = [users.create_user(f"watcher{n}") for n in range(6)]
    task = Task.objects.create(title="Watched by many")
    run = create_run(task, AgentRun.Status.ACCEPTED, requested_by=asker)
    status = streams.status_event(run)
    assert "control_html" in status
    pages = [watching(task, user) for user in [asker, staff, *others]]

    async def push_to_every_page() -> None:
        message = {"type": "relaybridge.run.status", "event": status}
        await asyncio.gather(*(page.relaybridge_run_status(message) for page, _ in pages))

    # async_to_sync from this thread runs the consumers' database work here too
    # (thread-sensitive), where the queries are captured.
    with CaptureQueriesContext(connection) as captured:
        async_to_sync(push_to_every_page)()

    runs = [query for query in captured if "relaybridge_agentrun" in query["sql"]]
    assert len(runs) == 1
    [[to_asker], [to_staff], *to_others] = [sent for _page, sent in pages]
    assert to_asker == streams.for_viewer(status, True) == to_staff
    assert to_others == [[streams.for_viewer(status, False)]] * len(others)
    assert to_asker != to_others[0][0]  # the buttons are what differs


def test_a_run_of_another_thread_gets_no_buttons(embedded: None) -> None:
    # A status naming a run of some other thread (the page's thread key is what
    # the question is asked for): no buttons, whoever asked that run.
    asker = get_user_model().objects.create_user("asker")
    mine = Task.objects.create(title="Mine")
    elsewhere = create_run(Task.objects.create(title="Elsewhere"), requested_by=asker)
    status = streams.status_event(elsewhere)
    page, sent = watching(mine, asker)
    message = {"type": "relaybridge.run.status", "event": status}
    async_to_sync(page.relaybridge_run_status)(message)
    assert sent == [streams.for_viewer(status, False)]
