"""Under an agent's reply: "Reply to Athena" and the thumbs up/down votes (example host)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models.signals import post_init
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from project.tasks.models import Comment, Task
from relaybridge import feedback, services, streams
from relaybridge.adapters import _load_adapter
from relaybridge.models import FEEDBACK_NOTE_MAX_CHARS, AgentRun, ReplyFeedback
from relaybridge.signals import reply_feedback
from tests.security.adapters import OWN_TASKS

pytestmark = pytest.mark.django_db

JSON: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}


def answered(task: Task, author: Any, text: str = "@athena hello", reply: str = "Hi.") -> AgentRun:
    """A person's mention, answered: the run is ``replied`` with its reply comment."""
    comment = Comment.objects.create(task=task, author=author, body=text)
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, f"evt_{run.pk}")
    assert services.record_reply(run.run_id, reply, {}) is not None
    run.refresh_from_db()
    return run


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def bob(db: None) -> Any:
    return get_user_model().objects.create_user("bob", password="pw", first_name="Bob")


def vote_url(run: AgentRun) -> str:
    return reverse("relaybridge:reply-feedback", kwargs={"run_id": run.run_id})


def page(client: Client, task: Task, query: str = "") -> str:
    response = client.get(reverse("tasks:task_detail", args=[task.pk]) + query)
    assert response.status_code == 200
    return response.content.decode()


# --- Reply to the agent -------------------------------------------------------------------


def test_every_agent_reply_has_a_reply_link_that_works_without_javascript(
    task: Task, user: Any
) -> None:
    run = answered(task, user)
    body = page(signed_in(user), task)
    link = re.search(r'<a class="relaybridge-reply-to" href="([^"]*)"[^>]*>([^<]*)</a>', body)
    assert link is not None
    assert link.group(1) == "?reply_to=athena#comment-form"
    assert link.group(2) == "Reply to Athena"
    assert f'data-relaybridge-reply-actions="{run.run_id}"' in body
    assert 'data-relaybridge-reply-to="athena"' in body


def test_the_reply_link_pre_fills_the_comment_box(task: Task, user: Any) -> None:
    answered(task, user)
    body = page(signed_in(user), task, "?reply_to=athena")
    box = re.search(r"<textarea[^>]*>([^<]*)</textarea>", body)
    assert box is not None and box.group(1).strip() == "@athena"
    # Case as the directory has it; only agents one may mention; never markup.
    assert "@athena" in page(signed_in(user), task, "?reply_to=ATHENA")
    for wanted in ("nobody", "<script>alert(1)</script>", "athena@evil", ""):
        body = page(signed_in(user), task, f"?reply_to={wanted}")
        box = re.search(r"<textarea[^>]*>([^<]*)</textarea>", body)
        assert box is not None and box.group(1).strip() == "", wanted


def test_the_reply_actions_use_no_inline_script_style_or_handlers(task: Task, user: Any) -> None:
    answered(task, user)
    body = page(signed_in(user), task)
    start = body.index('class="relaybridge-reply-actions"')
    actions = body[start : body.index("</form>", start)]
    assert "<script" not in actions and "style=" not in actions
    assert not re.search(r"\son[a-z]+=", actions)


# --- Feedback -------------------------------------------------------------------------------


@pytest.fixture
def signals_sent() -> Iterator[list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []

    def receiver(sender: Any, **kwargs: Any) -> None:
        sent.append(kwargs)

    reply_feedback.connect(receiver, dispatch_uid="test-reply-feedback")
    yield sent
    reply_feedback.disconnect(dispatch_uid="test-reply-feedback")


def test_a_vote_is_recorded_on_the_run_and_can_be_changed(
    task: Task,
    user: Any,
    signals_sent: list[dict[str, Any]],
    django_capture_on_commit_callbacks: Any,
) -> None:
    run = answered(task, user)
    client = signed_in(user)
    with django_capture_on_commit_callbacks(execute=True):
        first = client.post(vote_url(run), {"vote": "up", "note": "  spot on "}, **JSON)
    assert first.status_code == 200
    assert first.json() == {
        "ok": True,
        "type": "reply.feedback",
        "run": str(run.run_id),
        "comment_id": str(run.reply_comment_id),
        "up": 1,
        "down": 0,
        "mine": "up",
    }
    with django_capture_on_commit_callbacks(execute=True):
        changed = client.post(vote_url(run), {"vote": "down"}, **JSON)
    assert changed.json()["up"] == 0 and changed.json()["down"] == 1
    (vote,) = ReplyFeedback.objects.all()
    assert (vote.run, vote.user, vote.vote, vote.note) == (run, user, "down", "")
    assert vote.updated_at >= vote.created_at
    assert [(s["vote"], s["previous"], s["note"]) for s in signals_sent] == [
        ("up", None, "spot on"),
        ("down", "up", ""),
    ]
    assert signals_sent[0]["run"] == run and signals_sent[0]["user"] == user


def test_each_person_votes_once_and_the_page_shows_the_counts(
    task: Task, user: Any, bob: Any
) -> None:
    run = answered(task, user)
    assert signed_in(user).post(vote_url(run), {"vote": "up"}, **JSON).status_code == 200
    assert signed_in(bob).post(vote_url(run), {"vote": "down"}, **JSON).status_code == 200
    assert signed_in(bob).post(vote_url(run), {"vote": "down"}, **JSON).status_code == 200
    assert ReplyFeedback.objects.count() == 2
    body = page(signed_in(bob), task)
    assert re.search(r'data-relaybridge-feedback-count="up">1<', body)
    assert re.search(r'data-relaybridge-feedback-count="down">1<', body)
    # Bob's own vote is the pressed one on his page.
    assert re.search(r'value="down"[^>]*aria-pressed="true"', body)
    assert re.search(r'value="up"[^>]*aria-pressed="false"', body)


def test_a_plain_form_vote_redirects_back_to_the_page(task: Task, user: Any) -> None:
    run = answered(task, user)
    url = reverse("tasks:task_detail", args=[task.pk])
    response = signed_in(user).post(vote_url(run), {"vote": "up"}, HTTP_REFERER=url)
    assert response.status_code == 302 and response["Location"] == url
    assert ReplyFeedback.objects.get().vote == "up"


def test_bad_votes_and_overlong_notes_are_refused(task: Task, user: Any) -> None:
    run = answered(task, user)
    client = signed_in(user)
    for data in (
        {"vote": "sideways"},
        {},
        {"vote": "up", "note": "x" * (FEEDBACK_NOTE_MAX_CHARS + 1)},
    ):
        response = client.post(vote_url(run), data, **JSON)
        assert response.status_code == 400, data
    ok = client.post(vote_url(run), {"vote": "up", "note": "x" * FEEDBACK_NOTE_MAX_CHARS}, **JSON)
    assert ok.status_code == 200
    assert len(ReplyFeedback.objects.get().note) == FEEDBACK_NOTE_MAX_CHARS


def test_only_a_reply_can_be_voted_on(task: Task, user: Any) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@athena hello")
    run = AgentRun.objects.get(comment=comment)  # queued: no reply yet
    response = signed_in(user).post(vote_url(run), {"vote": "up"}, **JSON)
    assert response.status_code == 409
    assert not ReplyFeedback.objects.exists()


def test_votes_need_a_signed_in_person_a_post_and_a_known_run(task: Task, user: Any) -> None:
    run = answered(task, user)
    anonymous = Client().post(vote_url(run), {"vote": "up"})
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    assert signed_in(user).get(vote_url(run)).status_code == 405
    unknown = reverse(
        "relaybridge:reply-feedback", kwargs={"run_id": "00000000-0000-4000-8000-000000000000"}
    )
    assert signed_in(user).post(unknown, {"vote": "up"}, **JSON).status_code == 404
    assert not ReplyFeedback.objects.exists()


@pytest.fixture
def own_tasks(settings: Any) -> Iterator[None]:
    settings.RELAYBRIDGE_ADAPTER = OWN_TASKS
    _load_adapter.cache_clear()
    yield
    _load_adapter.cache_clear()


def test_only_people_who_can_view_the_thread_may_vote(own_tasks: None, user: Any) -> None:
    mine = Task.objects.create(title="Mine", description="owner:alice")
    run = answered(mine, user)
    mallory = get_user_model().objects.create_user("mallory", password="pw")
    response = signed_in(mallory).post(vote_url(run), {"vote": "down"}, **JSON)
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    assert not ReplyFeedback.objects.exists()
    assert signed_in(user).post(vote_url(run), {"vote": "up"}, **JSON).status_code == 200


def test_every_page_of_the_thread_gets_the_counts_and_only_the_voter_their_vote(
    task: Task, user: Any, bob: Any, django_capture_on_commit_callbacks: Any
) -> None:
    run = answered(task, user)
    layer = get_channel_layer()
    assert layer is not None
    group = streams.group_name_for_thread(run.thread_key)
    channel = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(group, channel)
    with django_capture_on_commit_callbacks(execute=True):
        signed_in(bob).post(vote_url(run), {"vote": "up", "note": "private"}, **JSON)

    async def receive() -> dict[str, Any]:
        message: dict[str, Any] = await asyncio.wait_for(layer.receive(channel), 5)
        return message

    message = async_to_sync(receive)()
    assert message["type"] == "relaybridge.reply.feedback"
    assert message["voter"] == str(bob.pk) and "private" not in str(message)
    assert feedback.page_event(message, bob) == {
        "type": "reply.feedback",
        "run": str(run.run_id),
        "comment_id": str(run.reply_comment_id),
        "up": 1,
        "down": 0,
        "mine": "up",
    }
    others = feedback.page_event(message, user)
    assert "mine" not in others and others["up"] == 1


def test_the_admin_lists_and_filters_votes(
    task: Task, user: Any, bob: Any, admin_client: Any
) -> None:
    run = answered(task, user)
    feedback.record_vote(run, user, "up", "clear")
    feedback.record_vote(run, bob, "down", "too long")
    url = reverse("admin:relaybridge_replyfeedback_changelist")
    everything = admin_client.get(url).content.decode()
    assert "too long" in everything and "clear" in everything
    ups = admin_client.get(url, {"vote": "up"}).content.decode()
    assert "clear" in ups and "too long" not in ups
    by_agent = admin_client.get(url, {"run__agent_id": "athena"})
    assert by_agent.status_code == 200


# --- The live reply's actions ---------------------------------------------------------------


def cost_of_live_reply(run: AgentRun) -> tuple[int, int, str]:
    """What the relay worker reads to push ``run``'s saved reply: its queries, the runs
    it loads, and the fragment."""
    assert run.reply_comment_id is not None
    reply = Comment.objects.get(pk=run.reply_comment_id)
    loaded: list[AgentRun] = []

    def count(sender: Any, instance: AgentRun, **kwargs: Any) -> None:
        loaded.append(instance)

    post_init.connect(count, sender=AgentRun)
    try:
        with CaptureQueriesContext(connection) as captured:
            message = streams.reply_event_for(run, reply)
    finally:
        post_init.disconnect(count, sender=AgentRun)
    return len(captured), len(loaded), message["fragment"]


def test_a_live_reply_costs_the_same_queries_however_long_its_thread(user: Any, bob: Any) -> None:
    """The worker pushes every reply it saves: the whole thread's runs and votes are not
    read for it (they were, in a thread of a few hundred answers, most of each save)."""
    short = Task.objects.create(title="short")
    long = Task.objects.create(title="long")
    for n in range(30):
        earlier = answered(long, user, f"@athena question {n}")
        feedback.record_vote(earlier, bob, "up")
    queries, runs, short_fragment = cost_of_live_reply(answered(short, user))
    assert cost_of_live_reply(answered(long, user, "@athena last"))[:2] == (queries, runs)
    long_fragment = cost_of_live_reply(answered(long, user, "@athena again"))[2]
    for fragment in (short_fragment, long_fragment):
        assert re.search(r'data-relaybridge-feedback-count="up">0<', fragment)
        assert "/regenerate/" in fragment and "Reply to Athena" in fragment


def test_a_live_reply_offers_its_votes_without_counting_them(task: Task, user: Any) -> None:
    """The push is rendered in the trip that saved the reply, before any page has shown
    it: nobody can have voted, so its votes are not counted (no query for them)."""
    run = answered(task, user)
    assert run.reply_comment_id is not None
    reply = Comment.objects.get(pk=run.reply_comment_id)
    with CaptureQueriesContext(connection) as captured:
        fragment = streams.reply_event_for(run, reply)["fragment"]
    assert not [query for query in captured if "replyfeedback" in query["sql"]]
    assert f'data-relaybridge-feedback="{run.run_id}"' in fragment
    assert re.search(r'data-relaybridge-feedback-count="up">0<', fragment)
    assert re.search(r'data-relaybridge-feedback-count="down">0<', fragment)
    # Pushed to every page: nobody's own vote is pressed in it.
    assert 'aria-pressed="true"' not in fragment


def test_a_page_counts_the_votes_of_a_reply_the_push_showed_at_zero(
    task: Task, user: Any, bob: Any
) -> None:
    """What a live push leaves uncounted, the next page view counts."""
    run = answered(task, user)
    feedback.record_vote(run, bob, "down")
    body = page(signed_in(user), task)
    assert re.search(r'data-relaybridge-feedback-count="down">1<', body)


def test_a_live_reply_whose_run_is_gone_still_goes_out(task: Task, user: Any) -> None:
    """Its run deleted (an admin's clean-up) between the save and the push: the push is
    made from the run as saved, and reads neither the run nor its stored HTML again."""
    run = answered(task, user)
    assert run.reply_comment_id is not None
    reply = Comment.objects.get(pk=run.reply_comment_id)
    AgentRun.objects.filter(pk=run.pk).delete()
    message = streams.reply_event_for(run, reply)
    assert message["run"] == str(run.run_id) and message["comment_id"] == str(reply.pk)
    assert message["html"].strip() == "<p>Hi.</p>"
    assert "Reply to Athena" in message["fragment"]
