"""The host seam: the default adapter, and another host's adapter plugged in by path."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured

from project.tasks.models import Comment, Task
from relaybridge import services
from relaybridge.adapters import DefaultCommentAdapter, get_adapter
from relaybridge.models import AgentRun

from .custom_adapter import BoardAdapter

pytestmark = pytest.mark.django_db


def test_default_adapter_answers_for_the_example_project(
    make_comment: Callable[..., Comment], task: Task, user: Any
) -> None:
    adapter = get_adapter()
    assert isinstance(adapter, DefaultCommentAdapter)
    assert adapter.comment_model() is Comment
    assert adapter.check() == []
    comment = make_comment("hello")
    agent_comment = make_comment("beep", agent_id="athena")
    assert adapter.text(comment) == "hello"
    assert adapter.thread_for(comment) == task
    assert adapter.thread_id(task) == f"task-{task.pk}"
    assert adapter.thread_key(task) == f"tasks.task.{task.pk}"
    assert adapter.thread_by_key(f"tasks.task.{task.pk}") == task
    for bad in ("tasks.task.nope", "tasks.task.999999", "other.thing.1", "", "tasks.task."):
        assert adapter.thread_by_key(bad) is None
    assert adapter.thread_title(task) == "Q2 Roadmap Review"
    assert adapter.sender(comment) == {"id": str(user.pk), "name": "Alice Ng"}
    assert adapter.sender(agent_comment) == {"id": "athena", "name": "Athena"}
    assert adapter.is_agent_comment(comment) is None
    assert adapter.is_agent_comment(agent_comment) == "athena"
    assert adapter.requested_by(comment) == user
    assert adapter.requested_by(agent_comment) is None
    assert adapter.agent_display_name("klyve") == "Klyve"


def test_comment_thread_key_comes_from_the_foreign_key_without_a_query(
    make_comment: Callable[..., Comment], task: Task, django_assert_num_queries: Any
) -> None:
    comment = Comment.objects.get(pk=make_comment("hello").pk)  # its task not loaded
    adapter = get_adapter()
    with django_assert_num_queries(0):
        assert adapter.comment_thread_key(comment) == f"tasks.task.{task.pk}"
        assert adapter.comment_thread_key(comment) == f"tasks.task.{task.pk}"


def test_comment_thread_key_follows_an_adapter_that_makes_its_own_thread_keys(
    make_comment: Callable[..., Comment], task: Task
) -> None:
    class SluggedKeys(DefaultCommentAdapter):
        def thread_key(self, thread: Any) -> str:
            return f"tasks.task.slug-{thread.pk}"

    comment = make_comment("hello")
    default, slugged = DefaultCommentAdapter(), SluggedKeys()
    # Asked in turn: what one adapter worked out for the comment model is not the other's.
    for _ in range(2):
        assert default.comment_thread_key(comment) == f"tasks.task.{task.pk}"
        assert slugged.comment_thread_key(comment) == f"tasks.task.slug-{task.pk}"


def test_thread_id_prefix_setting(task: Task, settings: Any) -> None:
    settings.RELAYBRIDGE_THREAD_ID_PREFIX = "ticket"
    assert get_adapter().thread_id(task) == f"ticket-{task.pk}"


def test_default_can_view(user: Any, task: Task) -> None:
    adapter = get_adapter()
    assert adapter.can_view(user, task)
    assert not adapter.can_view(AnonymousUser(), task)
    user.is_active = False
    assert not adapter.can_view(user, task)


def test_default_check_reports_missing_fields(settings: Any) -> None:
    settings.RELAYBRIDGE_BODY_FIELD = "text"
    settings.RELAYBRIDGE_THREAD_FIELD = "body"
    problems = get_adapter().check()
    assert any("no field 'text'" in p for p in problems)
    assert any("tasks.Comment.body must be a ForeignKey" in p for p in problems)
    settings.RELAYBRIDGE_COMMENT_MODEL = "nowhere.Comment"
    assert get_adapter().check() == ["comment model 'nowhere.Comment' is not installed"]


def test_another_adapter_plugs_in_by_dotted_path(
    make_comment: Callable[..., Comment], settings: Any, user: Any
) -> None:
    settings.RELAYBRIDGE_ADAPTER = "tests.django.custom_adapter.BoardAdapter"
    assert isinstance(get_adapter(), BoardAdapter)
    comment = make_comment("@klyve look")
    run = AgentRun.objects.get(comment=comment)
    assert (run.thread_id, run.thread_key) == (
        f"board:{comment.task_id}",
        f"board-{comment.task_id}",
    )

    claimed = services.claim_for_sending(run.run_id)
    assert claimed is not None
    payload = services.build_payload(claimed)
    assert payload["task_id"] == f"board:{comment.task_id}"
    assert payload["task_title"] == "[Board] Q2 Roadmap Review"
    assert payload["comments"] == [{"author": "board", "text": "(history is private)"}]
    services.mark_accepted(run.run_id, "evt_board")
    reply = services.record_reply(run.run_id, "done")
    assert reply is not None and reply.agent_id == "klyve" and reply.task_id == comment.task_id
    assert not get_adapter().can_view(user, comment.task)


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("tests.django.custom_adapter.Missing", "cannot be imported"),
        ("no_such_module.Adapter", "cannot be imported"),
        ("tests.django.custom_adapter.NotAnAdapter", "is not a subclass"),
    ],
)
def test_a_bad_adapter_path_is_a_clear_error(settings: Any, path: str, message: str) -> None:
    settings.RELAYBRIDGE_ADAPTER = path
    with pytest.raises(ImproperlyConfigured, match=message):
        get_adapter()


def test_base_adapter_methods_must_be_implemented() -> None:
    from relaybridge.adapters import CommentAdapter

    adapter = CommentAdapter()
    with pytest.raises(NotImplementedError):
        adapter.text(object())
    assert adapter.check() == []
    assert adapter.history(object(), 5) == []
