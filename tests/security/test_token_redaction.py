"""Tokens pasted into a thread are blanked before they are stored, sent or shown.

People paste secrets by mistake. A Relay token in a comment would be stored in
the host's table, rendered for everyone reading the task, sent to the agent in
the payload (and kept on the run), and an agent that repeats what it reads would
post it again. The app token in the environment is blanked the same way, and no
system check ever repeats a token put where it does not belong.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core import checks as django_checks
from django.test import Client

from project.tasks.models import Comment, Task
from relaybridge import checks, services
from relaybridge.models import AgentRun
from tests.stacks import eager_celery, use_embedded_default

from .secrets import SecretScanner

pytestmark = pytest.mark.django_db

AGENT_TOKEN = "rla_athena_4f9c2b7d1e8a6c3b"
APP_TOKEN = "rlk_portal_93be27c1d4f5a6b8"


@pytest.fixture(autouse=True)
def embedded(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_embedded_default(settings)
    monkeypatch.setenv("RELAY_APP_TOKEN", APP_TOKEN)
    # Dispatch is not under test: keep mentions from reaching a worker.
    monkeypatch.setattr(services, "queue_dispatch", lambda *args, **kwargs: None)
    with eager_celery():
        yield


def leaks(text: str) -> list[str]:
    return [str(f) for f in SecretScanner([AGENT_TOKEN, APP_TOKEN]).scan(text, "text")]


def test_a_token_in_a_comment_is_blanked_before_it_is_stored(task: Task, user: Any) -> None:
    comment = Comment.objects.create(
        task=task, author=user, body=f"@athena use {AGENT_TOKEN} and {APP_TOKEN} please"
    )
    stored = Comment.objects.get(pk=comment.pk).body
    assert stored == "@athena use [redacted] and [redacted] please"
    # The mention still counts: redaction keeps the rest of the text as it was.
    assert AgentRun.objects.filter(comment=comment, agent_id="athena").exists()


def test_the_payload_never_carries_a_token_even_from_older_history(task: Task, user: Any) -> None:
    # Written before redaction existed (or by an adapter that cannot redact): an
    # update bypasses the model's save, as old rows and raw imports do.
    old = Comment.objects.create(task=task, author=user, body="placeholder")
    Comment.objects.filter(pk=old.pk).update(body=f"the token was {AGENT_TOKEN}")
    comment = Comment.objects.create(task=task, author=user, body="@athena what was it?")
    run = AgentRun.objects.select_related("comment").get(comment=comment)
    payload = services.build_payload(run)
    assert payload["comments"][-1]["text"] == "the token was [redacted]"
    assert not leaks(repr(payload))


def test_an_agent_repeating_a_token_saves_it_blanked(task: Task, user: Any) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@athena hello")
    run = AgentRun.objects.get(comment=comment)
    AgentRun.objects.filter(pk=run.pk).update(status=AgentRun.Status.STREAMING)
    reply = services.record_reply(str(run.run_id), f"Here it is: {AGENT_TOKEN}")
    assert reply is not None
    assert Comment.objects.get(pk=reply.pk).body == "Here it is: [redacted]"


def test_stopped_and_failed_runs_keep_their_partial_text_blanked(task: Task, user: Any) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@athena @klyve hello")
    first, second = AgentRun.objects.filter(comment=comment).order_by("agent_id")
    AgentRun.objects.filter(pk__in=[first.pk, second.pk]).update(status=AgentRun.Status.STREAMING)
    assert services.mark_stopped(str(first.run_id), f"so far {APP_TOKEN}")
    services.record_error(str(second.run_id), "AGENT_ERROR", "x", partial_text=AGENT_TOKEN)
    texts = list(AgentRun.objects.values_list("partial_text", flat=True))
    assert sorted(texts) == ["[redacted]", "so far [redacted]"]


def test_the_task_page_never_shows_a_pasted_token(task: Task, user: Any) -> None:
    client = Client()
    client.force_login(user)
    response = client.post(f"/tasks/{task.pk}/", {"body": f"oops {AGENT_TOKEN}"})
    assert response.status_code == 302
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "oops [redacted]" in page
    assert not leaks(page)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RELAYBRIDGE_AGENT_SECRET", AGENT_TOKEN),
        ("RELAY_TOKEN", APP_TOKEN),
        ("RELAYBRIDGE_AGENTS", [AGENT_TOKEN]),
    ],
)
def test_a_token_pasted_into_settings_is_never_repeated_by_a_check(
    settings: Any, monkeypatch: pytest.MonkeyPatch, name: str, value: Any
) -> None:
    setattr(settings, name, value)
    monkeypatch.setenv("RELAY_APP_TOKEN", AGENT_TOKEN)  # an agent token as the app token
    messages = django_checks.run_checks(tags=["relaybridge"])
    assert {m.id for m in messages} & {"relaybridge.E004", "relaybridge.E006", "relaybridge.E007"}
    for message in messages:
        assert not leaks(f"{message.msg} {message.hint} {message}"), message
    assert checks.check_relay_credentials()[0].id == "relaybridge.E007"


def test_loggable_text_is_one_redacted_bounded_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaybridge.conf import loggable

    assert loggable("a\nb\r\x1b[31mc\u2028d\x85") == "a\\nb\\r\\x1b[31mc\\u2028d\\x85"
    assert loggable(f"key {APP_TOKEN} and {AGENT_TOKEN}") == "key [redacted] and [redacted]"
    assert loggable("x" * 500, limit=10) == "x" * 10 + "…"
    assert loggable(None) == "None"
