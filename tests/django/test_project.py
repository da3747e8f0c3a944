"""The example host project: models, seed data, ASGI, Celery and migrations."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command
from django.db import IntegrityError, models, transaction

from project.tasks.models import Comment, Task
from relaybridge.models import AgentRun


@pytest.mark.django_db
def test_seed_demo_is_idempotent_and_starts_no_runs() -> None:
    call_command("seed_demo", stdout=StringIO())
    counts = (Task.objects.count(), Comment.objects.count())
    call_command("seed_demo", stdout=StringIO())
    assert (Task.objects.count(), Comment.objects.count()) == counts
    assert counts[0] >= 3 and counts[1] >= 3
    assert authenticate(username="demo", password="demo") is not None
    assert not AgentRun.objects.exists()


@pytest.mark.django_db
def test_a_comment_is_by_a_person_or_an_agent_never_both(user: Any, task: Task) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        Comment.objects.create(task=task, author=user, agent_id="athena", body="x")
    agent_comment = Comment.objects.create(task=task, agent_id="athena", body="x")
    assert agent_comment.is_agent and "athena" in str(agent_comment)


@pytest.mark.django_db
def test_one_run_per_comment_and_agent_in_the_database(user: Any, task: Task) -> None:
    comment = Comment.objects.create(task=task, author=user, body="plain")
    AgentRun.objects.create(comment=comment, agent_id="athena", thread_id="t", thread_key="k")
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentRun.objects.create(comment=comment, agent_id="athena", thread_id="t", thread_key="k")


@pytest.mark.django_db
def test_migrations_are_complete() -> None:
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


def test_asgi_application_routes_http_and_websocket() -> None:
    from project.asgi import application

    assert set(application.application_mapping) == {"http", "websocket"}


def test_celery_app_is_configured_from_django_settings() -> None:
    from project import celery_app

    assert celery_app.main == "project"
    assert "relaybridge.dispatch_run" in celery_app.tasks


def test_run_ledger_points_at_the_comment_model_setting() -> None:
    from relaybridge.models import AgentRun

    for name in ("comment", "reply_comment"):
        field = AgentRun._meta.get_field(name)
        assert isinstance(field, models.Field)
        _, path, _, kwargs = field.deconstruct()
        assert path == "django.db.models.ForeignKey"
        assert kwargs["to"].setting_name == "RELAYBRIDGE_COMMENT_MODEL"
