"""A saved comment that mentions agents becomes runs and dispatches, once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from project.tasks.models import Comment
from relaybridge import services
from relaybridge.agents import store_directory
from relaybridge.models import AgentRun
from relaybridge.signals import comment_mention

from .conftest import drain

pytestmark = pytest.mark.django_db

MakeComment = Callable[..., Comment]


def run_agents(comment: Comment) -> list[str]:
    return sorted(AgentRun.objects.filter(comment=comment).values_list("agent_id", flat=True))


def test_two_mentions_make_two_runs_and_two_dispatches(
    make_comment: MakeComment, django_capture_on_commit_callbacks: Any, user: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        comment = make_comment("@athena summarize this, @klyve check the numbers")
    assert len(callbacks) == 2
    runs = list(AgentRun.objects.filter(comment=comment).order_by("agent_id"))
    assert [run.agent_id for run in runs] == ["athena", "klyve"]
    for run in runs:
        run.refresh_from_db()
        assert run.status == AgentRun.Status.SENDING
        assert run.thread_id == f"task-{comment.task_id}"
        assert run.thread_key == f"tasks.task.{comment.task_id}"
        assert run.requested_by == user
        assert run.hop_depth == 0
        assert run.attempts == 1
        assert run.payload is not None
        assert run.payload["relaybridge_run"] == str(run.run_id)
    messages = drain()
    assert sorted(m["run_id"] for m in messages) == sorted(str(r.run_id) for r in runs)
    assert {m["type"] for m in messages} == {"relaybridge.dispatch"}


def test_nothing_is_dispatched_when_the_comment_is_rolled_back(
    make_comment: MakeComment, django_capture_on_commit_callbacks: Any
) -> None:
    with (
        django_capture_on_commit_callbacks() as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        make_comment("@athena hello")
        assert AgentRun.objects.count() == 1
        raise RuntimeError("rolled back")
    assert callbacks == []
    assert not AgentRun.objects.exists()


def test_saving_again_or_editing_creates_no_duplicate(
    make_comment: MakeComment, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks() as first:
        comment = make_comment("@athena please")
    with django_capture_on_commit_callbacks() as again:
        comment.save()
    # An edit once Athena answered asks nothing by itself (an edit while the run is
    # going asks again: tests/django/test_revisions.py).
    AgentRun.objects.filter(comment=comment).update(status=AgentRun.Status.REPLIED)
    with django_capture_on_commit_callbacks() as edited:
        comment.body = "@athena please, and quickly (edited)"
        comment.save()
    assert len(first) == 1
    assert again == [] and edited == []
    assert run_agents(comment) == ["athena"]


def test_an_edit_that_adds_an_agent_runs_only_that_agent(
    make_comment: MakeComment, django_capture_on_commit_callbacks: Any
) -> None:
    comment = make_comment("@athena please")
    # Athena has answered: the edit runs the new agent only (Athena is offered on
    # the page, never asked again by itself; tests/django/test_revisions.py).
    AgentRun.objects.filter(comment=comment).update(status=AgentRun.Status.REPLIED)
    with django_capture_on_commit_callbacks() as callbacks:
        comment.body = "@athena please, and @klyve too"
        comment.save()
    assert len(callbacks) == 1
    assert run_agents(comment) == ["athena", "klyve"]


def test_signal_sent_twice_creates_one_run(
    make_comment: MakeComment, django_capture_on_commit_callbacks: Any, user: Any
) -> None:
    comment = make_comment("no mention here")
    with django_capture_on_commit_callbacks() as callbacks:
        for _ in range(2):
            comment_mention.send(
                sender=Comment, comment=comment, agent_ids=["athena"], requested_by=user
            )
    assert len(callbacks) == 1
    assert run_agents(comment) == ["athena"]


def test_a_host_may_send_the_signal_itself(make_comment: MakeComment) -> None:
    comment = make_comment("imported from elsewhere")
    comment_mention.send(sender=Comment, comment=comment, agent_ids=["klyve", "bad id!"])
    run = AgentRun.objects.get(comment=comment)
    assert run.agent_id == "klyve"
    assert run.requested_by is None


@pytest.mark.parametrize(
    "body",
    [
        "`@athena` is how you call her",
        "```\n@athena\n```",
        "write to bob@athena.com",
        "see https://example.com/@athena",
        "@nobody knows",
    ],
)
def test_non_mentions_create_nothing(make_comment: MakeComment, body: str) -> None:
    make_comment(body)
    assert not AgentRun.objects.exists()


def test_unknown_agents_are_ignored_and_discovery_wins(make_comment: MakeComment) -> None:
    store_directory([{"agent_id": "scout", "name": "Scout"}])
    comment = make_comment("@athena and @scout")
    assert run_agents(comment) == ["scout"]


def test_at_most_max_mentions_runs_per_comment(make_comment: MakeComment, settings: Any) -> None:
    settings.RELAYBRIDGE_MAX_MENTIONS = 2
    comment = make_comment("@athena @klyve @slow @sleepy")
    assert run_agents(comment) == ["athena", "klyve"]
    comment.body = "@slow @sleepy now"
    comment.save()
    assert run_agents(comment) == ["athena", "klyve"]


def test_agent_comments_trigger_nothing_by_default(make_comment: MakeComment) -> None:
    make_comment("@klyve what do you think?", agent_id="athena")
    assert not AgentRun.objects.exists()


def test_raw_saves_trigger_nothing(make_comment: MakeComment, task: Any, user: Any) -> None:
    comment = Comment(
        task=task, author=user, body="@athena from a fixture", created_at=timezone.now()
    )
    comment.save_base(raw=True)
    assert not AgentRun.objects.exists()


def _reply_through_run(run: AgentRun, text: str) -> Comment:
    assert services.claim_for_sending(run.run_id)
    assert services.mark_accepted(run.run_id, f"evt_{run.pk}")
    reply = services.record_reply(run.run_id, text)
    assert reply is not None
    return reply  # type: ignore[no-any-return]


def test_agent_hops_follow_the_depth_cap(make_comment: MakeComment, settings: Any) -> None:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_DEPTH = 1
    comment = make_comment("@athena ask klyve")
    first = AgentRun.objects.get(comment=comment)

    reply = _reply_through_run(first, "@klyve can you check? @athena (myself) should not run")
    second = AgentRun.objects.get(comment=reply)
    assert (second.agent_id, second.hop_depth) == ("klyve", 1)

    reply2 = _reply_through_run(second, "@athena back to you")
    assert not AgentRun.objects.filter(comment=reply2).exists()


def test_agent_hops_deeper_cap(make_comment: MakeComment, settings: Any) -> None:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_DEPTH = 2
    comment = make_comment("@athena start")
    run = AgentRun.objects.get(comment=comment)
    reply = _reply_through_run(run, "@klyve next")
    run = AgentRun.objects.get(comment=reply)
    reply = _reply_through_run(run, "@athena next")
    run = AgentRun.objects.get(comment=reply)
    assert run.hop_depth == 2
    reply = _reply_through_run(run, "@klyve again")
    assert not AgentRun.objects.filter(comment=reply).exists()


def test_agent_comment_outside_a_run_counts_as_one_hop(
    make_comment: MakeComment, settings: Any
) -> None:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_DEPTH = 1
    comment = make_comment("@klyve imported", agent_id="athena")
    assert AgentRun.objects.get(comment=comment).hop_depth == 1
    settings.RELAYBRIDGE_AGENT_HOP_DEPTH = 0
    other = make_comment("@klyve imported", agent_id="athena")
    assert not AgentRun.objects.filter(comment=other).exists()
