"""An adapter's ``handles(comment)`` scopes relaybridge to the threads it serves.

Every comment of the model saved anywhere on the site reaches the receivers; one
outside the adapter's threads must cost nothing beyond that one check.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from project.tasks.models import Comment, Task
from relaybridge.adapters import CommentAdapter, _load_adapter
from relaybridge.models import AgentRun
from relaybridge.signals import comment_mention
from tests.django.loop_adapters import ScopedAdapter

pytestmark = pytest.mark.django_db


@pytest.fixture
def scoped(settings: Any, task: Task) -> Iterator[Task]:
    """The scoped adapter, handling ``task`` only; yields a task it does not handle."""
    settings.RELAYBRIDGE_ADAPTER = "tests.django.loop_adapters.ScopedAdapter"
    _load_adapter.cache_clear()
    ScopedAdapter.task_ids = {task.pk}
    yield Task.objects.create(title="Someone else's thread")
    ScopedAdapter.task_ids = set()
    _load_adapter.cache_clear()


def test_every_comment_is_handled_by_default() -> None:
    assert CommentAdapter().handles(object()) is True


def test_an_out_of_scope_comment_costs_only_its_own_save(
    scoped: Task, user: Any, django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):  # the INSERT
        comment = Comment.objects.create(task=scoped, author=user, body="@athena @klyve hi")
    with django_assert_num_queries(1):  # the UPDATE
        comment.body = "@athena @klyve edited"
        comment.save()
    with django_assert_num_queries(0):
        comment_mention.send(sender=Comment, comment=comment, agent_ids=["athena"])
    assert not AgentRun.objects.exists()


def test_in_scope_comments_run_as_before(scoped: Task, task: Task, user: Any) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@athena hi")
    assert list(AgentRun.objects.values_list("comment_id", "agent_id")) == [(comment.pk, "athena")]
