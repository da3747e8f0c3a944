"""CSRF on every POST the example project and relaybridge accept.

Each POST is tried without a token (refused with 403, nothing changes, the user
stays signed in) and with one (accepted). A last test fails when a route is added
to relaybridge or the tasks app without being listed here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from project.tasks.models import Comment, Task
from relaybridge import services
from relaybridge.models import AgentRun, ReplyFeedback
from tests.consumers.conftest import create_run

Status = AgentRun.Status
JSON: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}


def button(action: str, run_id: Any) -> str:
    return reverse(f"relaybridge:{action}-run", kwargs={"run_id": run_id})


# --- CSRF on every POST -----------------------------------------------------------------


POSTS: dict[str, Callable[[Task, AgentRun, AgentRun], tuple[str, dict[str, str]]]] = {
    "comment": lambda task, failed, streaming: (f"/tasks/{task.pk}/", {"body": "@athena hi"}),
    "retry": lambda task, failed, streaming: (button("retry", failed.run_id), {}),
    "stop": lambda task, failed, streaming: (button("stop", streaming.run_id), {}),
    "mention preview": lambda task, failed, streaming: (
        reverse("relaybridge:mention-preview"),
        {"text": "@athena"},
    ),
    "logout": lambda task, failed, streaming: (reverse("tasks:logout"), {}),
    "reply feedback": lambda task, failed, streaming: (
        reverse("relaybridge:reply-feedback", kwargs={"run_id": replied_run(task).run_id}),
        {"vote": "up", "note": "spot on"},
    ),
}


def replied_run(task: Task) -> AgentRun:
    run = create_run(task, Status.REPLIED)
    run.reply_comment = Comment.objects.create(task=task, agent_id="athena", body="Done.")
    run.save(update_fields=["reply_comment"])
    return run


def state(task: Task) -> tuple[Any, ...]:
    runs = tuple(AgentRun.objects.order_by("pk").values_list("status", flat=True))
    votes = ReplyFeedback.objects.count()
    return (Comment.objects.filter(task=task).count(), runs, votes)


@pytest.mark.django_db
@pytest.mark.usefixtures("own_tasks")
@pytest.mark.parametrize("name", sorted(POSTS))
def test_every_post_needs_the_csrf_token(
    people: dict[str, Any], tasks: dict[str, Task], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(services, "queue_dispatch", lambda *args, **kwargs: None)
    task = tasks["alice"]
    # Alice's own runs: hers to retry and stop.
    asker = people["alice"]
    failed = create_run(task, Status.FAILED, requested_by=asker)
    streaming = create_run(task, Status.STREAMING, requested_by=asker)
    path, data = POSTS[name](task, failed, streaming)
    client = Client(enforce_csrf_checks=True)
    client.force_login(people["alice"])
    before = state(task)
    forged = client.post(path, data, **JSON)
    assert forged.status_code == 403, (name, forged.status_code)
    assert state(task) == before
    assert client.get(f"/tasks/{task.pk}/").status_code == 200, "the forged POST signed us out"

    client.get(f"/tasks/{task.pk}/")  # the page sets the CSRF cookie its form uses
    token = client.cookies[django_settings.CSRF_COOKIE_NAME].value
    allowed = client.post(path, data, HTTP_X_CSRFTOKEN=token, **JSON)
    assert allowed.status_code in {200, 302}, (name, allowed.status_code)


@pytest.mark.django_db
def test_signing_in_needs_the_csrf_token_too(people: dict[str, Any]) -> None:
    client = Client(enforce_csrf_checks=True)
    creds = {"username": "alice", "password": "pw"}
    assert client.post(reverse("tasks:login"), creds).status_code == 403
    assert "_auth_user_id" not in client.session
    client.get(reverse("tasks:login"))
    token = client.cookies[django_settings.CSRF_COOKIE_NAME].value
    response = client.post(reverse("tasks:login"), {**creds, "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and "_auth_user_id" in client.session


def test_the_tests_cover_every_route_of_relaybridge_and_the_tasks_app() -> None:
    """A new endpoint must be added above (and so get its CSRF test)."""
    from django.urls import URLPattern, URLResolver, get_resolver

    names = {
        f"{resolver.namespace}:{pattern.name}"
        for resolver in get_resolver().url_patterns
        if isinstance(resolver, URLResolver) and resolver.namespace in {"relaybridge", "tasks"}
        for pattern in resolver.url_patterns
        if isinstance(pattern, URLPattern)
    }
    covered = {
        "tasks:task_detail",
        "tasks:login",
        "tasks:logout",
        "relaybridge:retry-run",
        "relaybridge:stop-run",
        "relaybridge:mention-preview",
        "relaybridge:reply-feedback",
    }
    read_only = {"tasks:task_list"}
    assert names - covered - read_only == set(), "routes without a CSRF test"
    assert covered <= names
