"""Votes on a reply reach every page of the thread; only the voter's pages learn the vote."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client
from django.urls import reverse

from project.tasks.models import Comment, Task
from relaybridge.models import AgentRun

from .conftest import cookie_for, create_run, socket

JSON: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}


def replied_run(task: Task) -> AgentRun:
    run = create_run(task, AgentRun.Status.REPLIED)
    run.reply_comment = Comment.objects.create(task=task, agent_id="athena", body="Done.")
    run.save(update_fields=["reply_comment"])
    return run


def vote(username: str, run: AgentRun, value: str) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    url = reverse("relaybridge:reply-feedback", kwargs={"run_id": run.run_id})
    response = client.post(url, {"vote": value, "note": "a private note"}, **JSON)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("embedded")
async def test_every_tab_gets_the_counts_and_only_the_voter_s_tabs_their_vote(
    task: Task, make_user: Callable[..., Any]
) -> None:
    run = await sync_to_async(replied_run)(task)
    alice = await cookie_for(make_user, "alice")
    bob = await cookie_for(make_user, "bob")
    tabs = {"alice 1": socket(task.pk, alice), "alice 2": socket(task.pk, alice)}
    tabs["bob"] = socket(task.pk, bob)
    try:
        for tab in tabs.values():
            assert (await tab.connect())[0]
            assert (await tab.receive_json_from(timeout=2))["type"] == "snapshot"
        await sync_to_async(vote)("alice", run, "up")
        seen = {name: await tab.receive_json_from(timeout=5) for name, tab in tabs.items()}
        counts = {
            "type": "reply.feedback",
            "run": str(run.run_id),
            "comment_id": str(run.reply_comment_id),
            "up": 1,
            "down": 0,
        }
        assert seen["alice 1"] == seen["alice 2"] == {**counts, "mine": "up"}
        assert seen["bob"] == counts
        # Changed: every tab again, Bob's still without Alice's vote or note.
        await sync_to_async(vote)("alice", run, "down")
        seen = {name: await tab.receive_json_from(timeout=5) for name, tab in tabs.items()}
        assert seen["alice 2"]["mine"] == "down" and seen["alice 2"]["down"] == 1
        assert seen["bob"] == {**counts, "up": 0, "down": 1}
        assert "a private note" not in str(seen)
    finally:
        for tab in tabs.values():
            await tab.disconnect()
