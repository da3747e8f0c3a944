"""Edits, deletes and Regenerate: later revisions of a run, and runs whose question went."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.db import IntegrityError, close_old_connections, connection, transaction
from django.test import Client
from django.urls import reverse

from project.tasks.models import Comment, Task
from relaybridge import revisions, services, streams
from relaybridge.models import AgentRun
from relaybridge.protocol.codes import ErrorCode
from relaybridge.questions import question_digest
from tests.stacks import stream_layer

MakeComment = Callable[..., Comment]
Status = AgentRun.Status

pytestmark = pytest.mark.django_db


def runs_of(comment: Comment) -> list[AgentRun]:
    return list(AgentRun.objects.filter(comment=comment).order_by("agent_id", "revision"))


def page(client: Client, task: Task) -> str:
    response = client.get(reverse("tasks:task_detail", args=[task.pk]))
    assert response.status_code == 200
    return response.content.decode()


def post_json(client: Client, url: str) -> Any:
    return client.post(url, HTTP_ACCEPT="application/json")


@pytest.fixture
def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def answered(run: AgentRun, text: str = "Here is the plan.") -> Comment:
    reply = services.record_reply(run.run_id, text)
    assert reply is not None
    return reply  # type: ignore[no-any-return]


def listen(task: Task) -> Callable[[], dict[str, Any]]:
    """Join the thread's group as a page would; return a receiver with a deadline."""
    layer = stream_layer()
    group = streams.group_name_for_thread(f"tasks.task.{task.pk}")

    async def join() -> str:
        channel: str = await layer.new_channel()
        await layer.group_add(group, channel)
        return channel

    channel = async_to_sync(join)()

    async def receive() -> dict[str, Any]:
        received: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), 5)
        return received

    def next_event() -> dict[str, Any]:
        event: dict[str, Any] = async_to_sync(receive)()["event"]
        return event

    return next_event


# -- edits ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [Status.QUEUED, Status.SENDING, Status.STREAMING])
def test_an_edit_while_the_run_is_going_stops_it_and_asks_again(
    make_comment: MakeComment, status: str
) -> None:
    comment = make_comment("@athena summarise the roadmap")
    (first,) = runs_of(comment)
    assert first.revision == 1
    assert first.question_digest == question_digest("@athena summarise the roadmap")
    AgentRun.objects.filter(pk=first.pk).update(status=status)
    comment.body = "@athena summarise the roadmap for Q3"
    comment.save()
    old, new = runs_of(comment)
    assert (old.pk, old.status, old.error_code) == (first.pk, Status.STOPPED, ErrorCode.EDITED)
    assert (new.revision, new.status, new.regenerates_id) == (2, Status.QUEUED, None)
    assert new.question_digest == question_digest(comment.body)
    assert new.question_excerpt == comment.body
    # Saved again unchanged: nothing more.
    comment.save()
    assert len(runs_of(comment)) == 2


def test_an_edit_pushes_the_stop_and_the_new_run_to_every_page(
    make_comment: MakeComment, task: Task, django_capture_on_commit_callbacks: Any
) -> None:
    comment = make_comment("@athena hello")
    (first,) = runs_of(comment)
    next_event = listen(task)
    with django_capture_on_commit_callbacks(execute=True):
        comment.body = "@athena hello again"
        comment.save()
    _, new = runs_of(comment)
    seen: dict[str, dict[str, Any]] = {}
    while len(seen) < 2:
        event = next_event()
        seen[event["run"]] = event
    assert seen[str(first.run_id)]["status"] == Status.STOPPED
    assert seen[str(first.run_id)]["code"] == ErrorCode.EDITED
    assert seen[str(new.run_id)]["status"] == Status.QUEUED
    assert seen[str(new.run_id)]["comment_id"] == str(comment.pk)


def test_an_edit_that_drops_the_mention_stops_the_run_only(make_comment: MakeComment) -> None:
    comment = make_comment("@athena hello")
    comment.body = "never mind"
    comment.save()
    (run,) = runs_of(comment)
    assert (run.status, run.error_code) == (Status.STOPPED, ErrorCode.EDITED)


def test_a_run_stopped_by_an_edit_cannot_be_retried(
    make_comment: MakeComment, signed_in: Client
) -> None:
    comment = make_comment("@athena hello")
    comment.body = "@athena hello there"
    comment.save()
    old, _new = runs_of(comment)
    response = post_json(signed_in, f"/relaybridge/runs/{old.run_id}/retry/")
    assert response.status_code == 409
    old.refresh_from_db()
    assert old.status == Status.STOPPED


def test_an_edit_after_the_reply_offers_to_ask_again_and_runs_nothing(
    make_comment: MakeComment, task: Task, signed_in: Client
) -> None:
    comment = make_comment("@athena what is next?")
    (first,) = runs_of(comment)
    answered(first)
    assert "again with the edited text" not in page(signed_in, task)
    comment.body = "@athena what is next, and when?"
    comment.save()
    assert [run.pk for run in runs_of(comment)] == [first.pk]
    body = page(signed_in, task)
    url = f"/relaybridge/runs/{first.run_id}/ask-again/"
    assert f'action="{url}"' in body
    assert "Ask Athena again with the edited text" in body

    response = post_json(signed_in, url)
    assert response.status_code == 200, response.content
    _, new = runs_of(comment)
    assert (new.revision, new.status, new.regenerates_id) == (2, Status.QUEUED, None)
    assert response.json()["run"]["run"] == str(new.run_id)
    assert "again with the edited text" not in page(signed_in, task)
    # Pressed again (another tab): the question was asked already.
    again = post_json(signed_in, url)
    assert again.status_code == 409
    assert again.json()["error"] == "superseded"
    assert len(runs_of(comment)) == 2


def test_ask_again_without_an_edit_is_refused(make_comment: MakeComment, signed_in: Client) -> None:
    comment = make_comment("@athena what is next?")
    (first,) = runs_of(comment)
    answered(first)
    response = post_json(signed_in, f"/relaybridge/runs/{first.run_id}/ask-again/")
    assert (response.status_code, response.json()["error"]) == (409, "unchanged")


def test_two_edits_at_once_make_one_new_run(make_comment: MakeComment) -> None:
    """Both saves saw revision 1 going; the database lets only one make revision 2."""
    comment = make_comment("@athena hello")
    (first,) = runs_of(comment)
    stale = AgentRun.objects.get(pk=first.pk)  # what the second save read
    comment.body = "@athena hello, edited"
    comment.save()
    assert revisions._ask_again_after_edit(stale, comment) is None
    assert [(run.revision, run.status) for run in runs_of(comment)] == [
        (1, Status.STOPPED),
        (2, Status.QUEUED),
    ]


def test_the_database_keeps_one_run_per_comment_agent_and_revision(
    make_comment: MakeComment,
) -> None:
    comment = make_comment("@athena hello")
    (first,) = runs_of(comment)
    with pytest.raises(IntegrityError), transaction.atomic():
        AgentRun.objects.create(
            comment=comment, agent_id="athena", revision=1, thread_id="t", thread_key="k"
        )
    AgentRun.objects.create(
        comment=comment, agent_id="athena", revision=2, thread_id="t", thread_key="k"
    )
    assert first.revision == 1


@pytest.mark.parametrize("atomic", [True, False], ids=["in-a-transaction", "autocommit"])
@pytest.mark.django_db(transaction=True)
def test_two_edits_at_once_make_one_new_run_on_postgresql(
    task: Task, user: Any, atomic: bool
) -> None:
    """The same edit saved twice at once (two tabs, a double submit): one new run.

    In a transaction the second save waits for the first's lock on the comment and
    then finds the new text asked already; in autocommit both may find revision 1
    going, and the database lets one of them make revision 2.
    """
    if connection.vendor != "postgresql":
        pytest.skip("needs concurrent writers (PostgreSQL); SQLite serializes writers itself")
    comment = Comment.objects.create(task=task, author=user, body="@athena hello")
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def edit(n: int) -> None:
        try:
            mine = Comment.objects.get(pk=comment.pk)
            mine.body = "@athena hello, edited"
            start.wait(10)
            with transaction.atomic() if atomic else contextlib.nullcontext():
                mine.save()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=edit, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not errors, errors
    runs = runs_of(comment)
    assert [run.revision for run in runs] == [1, 2]
    assert runs[0].status == Status.STOPPED


# -- deletes -------------------------------------------------------------------


def test_deleting_a_comment_stops_its_runs_and_the_ledger_keeps_them(
    make_comment: MakeComment, task: Task, django_capture_on_commit_callbacks: Any
) -> None:
    text = "@athena " + "please look at the budget " * 20
    comment = make_comment(text)
    klyve = make_comment("@klyve hi")
    (going,) = runs_of(comment)
    AgentRun.objects.filter(pk=going.pk).update(status=Status.STREAMING, partial_text="Half")
    next_event = listen(task)
    with django_capture_on_commit_callbacks(execute=True):
        comment.delete()
    going.refresh_from_db()
    assert going.comment_id is None
    assert (going.status, going.error_code) == (Status.STOPPED, ErrorCode.COMMENT_DELETED)
    assert going.partial_text == "Half"
    assert going.question_excerpt == text[:200]
    assert going.finished_at is not None
    event = next_event()
    assert (event["run"], event["status"]) == (str(going.run_id), Status.STOPPED)
    # The other comment's run is untouched.
    assert runs_of(klyve)[0].status == Status.QUEUED


def test_a_deleted_comments_answered_run_keeps_its_reply_and_cannot_be_retried(
    make_comment: MakeComment, signed_in: Client, task: Task
) -> None:
    comment = make_comment("@athena hi")
    (run,) = runs_of(comment)
    reply = answered(run)
    comment.delete()
    run.refresh_from_db()
    assert (run.status, run.comment_id, run.reply_comment_id) == (
        Status.REPLIED,
        None,
        reply.pk,
    )
    regenerate = post_json(signed_in, f"/relaybridge/runs/{run.run_id}/regenerate/")
    assert (regenerate.status_code, regenerate.json()["error"]) == (409, "question deleted")
    assert AgentRun.objects.count() == 1
    # The reply stays on the page, without a Regenerate for a question that is gone.
    body = page(signed_in, task)
    assert f'id="comment-{reply.pk}"' in body
    assert f"/runs/{run.run_id}/regenerate/" not in body


@pytest.mark.parametrize("action", ["retry", "stop"])
def test_retry_and_stop_of_a_run_whose_comment_was_deleted_are_refused(
    make_comment: MakeComment, signed_in: Client, action: str
) -> None:
    comment = make_comment("@athena hi")
    (run,) = runs_of(comment)
    comment.delete()
    response = post_json(signed_in, f"/relaybridge/runs/{run.run_id}/{action}/")
    assert response.status_code == 409
    run.refresh_from_db()
    assert (run.status, run.error_code) == (Status.STOPPED, ErrorCode.COMMENT_DELETED)


def test_a_thread_deleted_keeps_its_runs(make_comment: MakeComment, task: Task) -> None:
    make_comment("@athena hi")
    task.delete()
    (run,) = AgentRun.objects.all()
    assert (run.comment_id, run.status, run.error_code) == (
        None,
        Status.STOPPED,
        ErrorCode.COMMENT_DELETED,
    )


# -- regenerate ------------------------------------------------------------------


def test_regenerate_twice_makes_two_labelled_revisions(
    make_comment: MakeComment, task: Task, signed_in: Client
) -> None:
    comment = make_comment("@athena draft the release note")
    (first,) = runs_of(comment)
    reply = answered(first, "Version one.")
    body = page(signed_in, task)
    assert f'action="/relaybridge/runs/{first.run_id}/regenerate/"' in body
    assert "Regenerated answer" not in body

    response = post_json(signed_in, f"/relaybridge/runs/{first.run_id}/regenerate/")
    assert response.status_code == 200, response.content
    _, second = runs_of(comment)
    assert (second.revision, second.regenerates_id, second.status) == (2, first.pk, "queued")
    assert response.json()["run"]["comment_id"] == str(comment.pk)
    # Pressed again while the new answer is on its way: one at a time.
    busy = post_json(signed_in, f"/relaybridge/runs/{first.run_id}/regenerate/")
    assert (busy.status_code, busy.json()["error"]) == (409, "busy")

    second_reply = answered(second, "Version two.")
    response = post_json(signed_in, f"/relaybridge/runs/{second.run_id}/regenerate/")
    assert response.status_code == 200
    third = runs_of(comment)[2]
    assert (third.revision, third.regenerates_id) == (3, second.pk)
    third_reply = answered(third, "Version three.")

    body = page(signed_in, task)
    for earlier in (reply, second_reply, third_reply):
        assert f'id="comment-{earlier.pk}"' in body
    article = body[body.index(f'id="comment-{second_reply.pk}"') :]
    assert "Regenerated answer" in article[: article.index("</article>")]
    article = body[body.index(f'id="comment-{reply.pk}"') :]
    assert "Regenerated answer" not in article[: article.index("</article>")]
    assert body.count("Regenerated answer") == 2


def test_the_live_reply_of_a_regeneration_is_labelled(make_comment: MakeComment) -> None:
    from relaybridge.fragments import render_reply

    comment = make_comment("@athena draft")
    (first,) = runs_of(comment)
    answered(first)
    second = revisions.next_run(first, comment, regenerates=first)
    assert second is not None
    reply = answered(second, "Again.")
    fragment = render_reply(reply)
    assert "Regenerated answer" in fragment
    assert f'action="/relaybridge/runs/{second.run_id}/regenerate/"' in fragment


def test_only_an_answer_can_be_regenerated(make_comment: MakeComment, signed_in: Client) -> None:
    comment = make_comment("@athena hi")
    (run,) = runs_of(comment)
    response = post_json(signed_in, f"/relaybridge/runs/{run.run_id}/regenerate/")
    assert (response.status_code, response.json()["error"]) == (409, "not replied")


def test_the_buttons_are_checked_like_retry(
    make_comment: MakeComment, settings: Any, user: Any
) -> None:
    comment = make_comment("@athena hi")
    (run,) = runs_of(comment)
    answered(run)
    anonymous = Client()
    response = anonymous.post(f"/relaybridge/runs/{run.run_id}/regenerate/")
    assert response.status_code == 302  # to sign in
    assert "/login" in response["Location"] or "login" in response["Location"]
    guarded = Client(enforce_csrf_checks=True)
    guarded.force_login(user)
    assert guarded.post(f"/relaybridge/runs/{run.run_id}/regenerate/").status_code == 403
    assert guarded.get(f"/relaybridge/runs/{run.run_id}/regenerate/").status_code == 405
    user.is_active = False
    user.save()
    refused = Client()
    refused.force_login(user)
    response = post_json(refused, f"/relaybridge/runs/{run.run_id}/ask-again/")
    assert response.status_code in (302, 403)
    assert len(runs_of(comment)) == 1


def test_a_plain_form_post_goes_back_to_its_page(
    make_comment: MakeComment, signed_in: Client, task: Task
) -> None:
    comment = make_comment("@athena hi")
    (run,) = runs_of(comment)
    answered(run)
    here = "http://testserver" + reverse("tasks:task_detail", args=[task.pk])
    response = signed_in.post(f"/relaybridge/runs/{run.run_id}/regenerate/", HTTP_REFERER=here)
    assert (response.status_code, response["Location"]) == (302, here)
    assert len(runs_of(comment)) == 2


def test_unknown_run_is_404(signed_in: Client) -> None:
    url = "/relaybridge/runs/00000000-0000-0000-0000-000000000000/regenerate/"
    assert post_json(signed_in, url).status_code == 404


def test_only_those_who_may_retry_may_regenerate_or_ask_again(make_comment: MakeComment) -> None:
    from django.contrib.auth import get_user_model

    comment = make_comment("@athena hi")
    (run,) = runs_of(comment)
    answered(run)
    comment.body = "@athena hi, edited"
    comment.save()
    other = Client()
    other.force_login(get_user_model().objects.create_user("bob", password="pw"))
    for action in ("regenerate", "ask-again"):
        response = post_json(other, f"/relaybridge/runs/{run.run_id}/{action}/")
        assert (response.status_code, response.json()["error"]) == (403, "forbidden")
    assert len(runs_of(comment)) == 1


def test_the_page_draws_the_buttons_for_those_who_may_press_them(
    make_comment: MakeComment, task: Task
) -> None:
    from django.contrib.auth import get_user_model

    comment = make_comment("@athena hi")
    (run,) = runs_of(comment)
    answered(run)
    comment.body = "@athena hi, edited"
    comment.save()
    other = Client()
    other.force_login(get_user_model().objects.create_user("bob", password="pw"))
    body = page(other, task)
    assert "/regenerate/" not in body and "/ask-again/" not in body
