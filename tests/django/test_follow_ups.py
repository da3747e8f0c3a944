"""Follow-ups without a mention (RELAYBRIDGE_FOLLOW_UP_WINDOW) on the example host."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from project.tasks.models import Comment, Task
from relaybridge import follow_ups
from relaybridge.adapters import _load_adapter
from relaybridge.models import AgentRun
from relaybridge.signals import comment_mention
from tests.security.adapters import OWN_TASKS

from .test_reply_feedback import answered, signed_in

pytestmark = pytest.mark.django_db

WINDOW = 600


@pytest.fixture(autouse=True)
def window(settings: Any) -> None:
    settings.RELAYBRIDGE_FOLLOW_UP_WINDOW = WINDOW


@pytest.fixture
def bob(db: None) -> Any:
    return get_user_model().objects.create_user("bob", password="pw", first_name="Bob")


@pytest.fixture
def mentions() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    comment_mention.connect(receiver, dispatch_uid="test-follow-ups")
    yield sent
    comment_mention.disconnect(dispatch_uid="test-follow-ups")


def answered_ago(task: Task, user: Any, seconds: float, agent: str = "athena") -> AgentRun:
    run = answered(task, user, f"@{agent} what is left?")
    finished = timezone.now() - timedelta(seconds=seconds)
    AgentRun.objects.filter(pk=run.pk).update(finished_at=finished)
    run.refresh_from_db()
    return run


def runs_of(comment: Comment) -> list[tuple[str, int | None]]:
    return list(AgentRun.objects.filter(comment=comment).values_list("agent_id", "requested_by"))


def test_the_asker_s_next_comment_without_a_mention_goes_to_the_agent(
    task: Task, user: Any, mentions: list[dict[str, Any]]
) -> None:
    answered_ago(task, user, 5)
    mentions.clear()
    comment = Comment.objects.create(task=task, author=user, body="And the deadline?")
    assert runs_of(comment) == [("athena", user.pk)]
    (sent,) = mentions
    assert sent["chosen_by"] == "follow-up" and sent["agent_ids"] == ["athena"]
    assert sent["requested_by"] == user and sent["hop_depth"] == 0
    # Same thread, same Relay thread id: the agent continues the conversation.
    run = AgentRun.objects.get(comment=comment)
    assert run.thread_id == f"task-{task.pk}"


def test_a_mention_is_chosen_by_mention_and_is_never_a_follow_up(
    task: Task, user: Any, mentions: list[dict[str, Any]]
) -> None:
    answered_ago(task, user, 5)
    mentions.clear()
    comment = Comment.objects.create(task=task, author=user, body="@klyve what do you think?")
    assert runs_of(comment) == [("klyve", user.pk)]
    assert [sent["chosen_by"] for sent in mentions] == ["mentioned"]


def test_the_window_s_edges(task: Task, user: Any) -> None:
    run = answered_ago(task, user, 0)
    assert run.finished_at is not None
    end = run.finished_at + timedelta(seconds=WINDOW)
    assert follow_ups.pending_follow_up(run.thread_key, user, end) == run
    assert (
        follow_ups.pending_follow_up(run.thread_key, user, end + timedelta(microseconds=1)) is None
    )
    # Through the receiver, just inside and just outside.
    answered_ago(task, user, WINDOW - 5)
    inside = Comment.objects.create(task=task, author=user, body="Still there?")
    assert runs_of(inside) == [("athena", user.pk)]
    # Every reply of the thread now a little longer ago than the window.
    AgentRun.objects.filter(status=AgentRun.Status.REPLIED).update(
        finished_at=timezone.now() - timedelta(seconds=WINDOW + 5)
    )
    outside = Comment.objects.create(task=task, author=user, body="Hello again")
    assert runs_of(outside) == []


def test_off_by_default_and_with_zero(settings: Any, task: Task, user: Any) -> None:
    for value in (None, 0):
        settings.RELAYBRIDGE_FOLLOW_UP_WINDOW = value
        answered_ago(task, user, 1)
        comment = Comment.objects.create(task=task, author=user, body="Thanks!")
        assert runs_of(comment) == []
    del settings.RELAYBRIDGE_FOLLOW_UP_WINDOW
    comment = Comment.objects.create(task=task, author=user, body="Thanks again!")
    assert runs_of(comment) == []


def test_a_negative_window_is_reported(settings: Any) -> None:
    settings.RELAYBRIDGE_FOLLOW_UP_WINDOW = -5
    messages = [m for m in run_checks() if m.id == "relaybridge.E006"]
    assert any("FOLLOW_UP_WINDOW" in m.msg for m in messages)


def test_a_second_person_s_comment_is_not_a_follow_up(task: Task, user: Any, bob: Any) -> None:
    answered_ago(task, user, 5)
    comment = Comment.objects.create(task=task, author=bob, body="I have a question too")
    assert runs_of(comment) == []


def test_only_the_latest_reply_counts(task: Task, user: Any, bob: Any) -> None:
    answered_ago(task, user, 30)
    answered_ago(task, bob, 10, agent="klyve")  # Bob asked last: the thread is his now
    mine = Comment.objects.create(task=task, author=user, body="And?")
    assert runs_of(mine) == []
    his = Comment.objects.create(task=task, author=bob, body="And?")
    assert runs_of(his) == [("klyve", bob.pk)]


def test_an_edit_an_agent_s_comment_or_an_agent_no_longer_known_is_not_a_follow_up(
    settings: Any, task: Task, user: Any
) -> None:
    answered_ago(task, user, 5)
    assert AgentRun.objects.count() == 1  # saving the reply itself followed nothing up
    agent_comment = Comment.objects.create(task=task, agent_id="athena", body="One more thing")
    assert runs_of(agent_comment) == []
    comment = Comment.objects.create(task=task, author=user, body="@nobody hi")
    assert runs_of(comment) == [("athena", user.pk)]  # an unknown name is no mention
    AgentRun.objects.filter(comment=comment).delete()
    comment.body = "edited"
    comment.save()
    assert runs_of(comment) == []
    settings.RELAYBRIDGE_AGENTS = ["klyve"]
    gone = Comment.objects.create(task=task, author=user, body="Athena?")
    assert runs_of(gone) == []


def test_the_opt_out_box_of_the_form_and_the_other_marks(task: Task, user: Any) -> None:
    answered_ago(task, user, 5)
    client = signed_in(user)
    url = reverse("tasks:task_detail", args=[task.pk])
    response = client.post(url, {"body": "Just a note", follow_ups.NO_FOLLOW_UP_FIELD: "1"})
    assert response.status_code == 302
    noted = Comment.objects.get(body="Just a note")
    assert runs_of(noted) == []
    client.post(url, {"body": "Now a question", follow_ups.NO_FOLLOW_UP_FIELD: ""})
    assert runs_of(Comment.objects.get(body="Now a question")) == [("athena", user.pk)]
    AgentRun.objects.filter(comment__body="Now a question").update(
        finished_at=timezone.now(), status=AgentRun.Status.REPLIED
    )
    with follow_ups.no_follow_ups():
        imported = Comment.objects.create(task=task, author=user, body="Imported")
    assert runs_of(imported) == []
    marked = Comment(task=task, author=user, body="Marked")
    setattr(marked, follow_ups.NO_FOLLOW_UP_MARK, True)
    marked.save()
    assert runs_of(marked) == []


def preview(client: Client, text: str, thread: str) -> dict[str, Any]:
    response = client.post(
        reverse("relaybridge:mention-preview"),
        {"text": text, "thread": thread},
        HTTP_ACCEPT="application/json",
    )
    assert response.status_code == 200
    answer: dict[str, Any] = response.json()
    return answer


def test_the_preview_says_a_comment_will_continue_with_the_agent(
    task: Task, user: Any, bob: Any
) -> None:
    run = answered_ago(task, user, 5)
    answer = preview(signed_in(user), "And the deadline?", run.thread_key)
    assert answer["message"] == "Posting will continue with Athena."
    assert answer["follow_up"]["agent_id"] == "athena"
    assert answer["follow_up"]["opt_out"] == "Post without asking Athena"
    assert answer["agents"] == []
    # A mention, another person, an unknown thread: no follow-up.
    assert preview(signed_in(user), "@klyve hi", run.thread_key)["follow_up"] is None
    assert preview(signed_in(bob), "And?", run.thread_key)["follow_up"] is None
    assert preview(signed_in(user), "And?", "tasks.task.999999")["follow_up"] is None
    assert preview(signed_in(user), "And?", "")["follow_up"] is None


def test_the_preview_tells_nothing_of_a_thread_one_cannot_view(settings: Any, user: Any) -> None:
    settings.RELAYBRIDGE_ADAPTER = OWN_TASKS
    _load_adapter.cache_clear()
    try:
        theirs = Task.objects.create(title="Theirs", description="owner:mallory")
        run = answered_ago(theirs, user, 5)
        assert preview(signed_in(user), "And?", run.thread_key)["follow_up"] is None
    finally:
        _load_adapter.cache_clear()


def test_the_page_shows_the_notice_and_the_opt_out_box(task: Task, user: Any) -> None:
    url = reverse("tasks:task_detail", args=[task.pk])
    client = signed_in(user)
    quiet = client.get(url).content.decode()
    assert f'data-relaybridge-follow-up="tasks.task.{task.pk}" hidden' in quiet
    answered_ago(task, user, 5)
    body = client.get(url).content.decode()
    assert f'data-relaybridge-follow-up="tasks.task.{task.pk}">' in body
    assert "A comment without a mention continues with Athena until" in body
    assert f'name="{follow_ups.NO_FOLLOW_UP_FIELD}"' in body
    assert "Post without asking Athena" in body
