"""A run the loop backstop refused shows on the task page, under its comment, with the reason."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from project.tasks.models import Comment, Task
from relaybridge.models import AgentRun

pytestmark = pytest.mark.django_db


def test_the_refusal_shows_under_its_comment(client_in: Client, task: Task, settings: Any) -> None:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_LIMIT = 0
    comment = Comment.objects.create(task=task, agent_id="athena", body="@klyve over to you")
    run = AgentRun.objects.get(comment=comment)

    response = client_in.get(reverse("tasks:task_detail", args=[task.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    article = body[body.index(f'id="comment-{comment.pk}"') :]
    article = article[: article.index("</article>")]
    assert f'data-relaybridge-run="{run.run_id}"' in article
    assert 'data-status="refused"' in article
    assert "Not sent: too many agent replies in this thread in the last 10 minutes." in article
    assert "Retry" not in article and "Stop" not in article
