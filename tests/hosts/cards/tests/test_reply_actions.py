"""Reply to an agent, follow-ups without a mention and feedback on the cards host.

Comments are django_comments' and are posted through its own view: the follow-up
opt-out reaches relaybridge through django_comments' ``comment_will_be_posted``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import django_comments
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_comments.forms import CommentForm

from relaybridge import services
from relaybridge.follow_ups import NO_FOLLOW_UP_FIELD
from relaybridge.models import AgentRun, ReplyFeedback

from ..cards.models import Card
from .conftest import MakeComment

pytestmark = pytest.mark.django_db

Comment = django_comments.get_model()
JSON: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def answered(make_comment: MakeComment, user: Any, seconds_ago: float = 5) -> AgentRun:
    mention = make_comment("@athena what is left?", user=user)
    run = AgentRun.objects.get(comment=mention)
    assert services.record_reply(run.run_id, "The status page.") is not None
    AgentRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now() - timedelta(seconds=seconds_ago)
    )
    run.refresh_from_db()
    return run


def post_comment(client: Client, card: Card, text: str, **extra: str) -> Any:
    data = CommentForm(card).generate_security_data()
    data.update(comment=text, honeypot="", next=f"/cards/{card.pk}/", **extra)
    response = client.post("/comments/post/", data)
    assert response.status_code == 302, response.content
    return Comment.objects.order_by("-pk").first()


@pytest.fixture
def bob(db: None) -> Any:
    return get_user_model().objects.create_user("bob", password="pw", email="bob@example.com")


@pytest.fixture
def alice(user: Any) -> Any:
    user.email = "alice@example.com"
    user.save()
    return user


def test_the_agent_s_reply_has_reply_and_vote_actions(
    make_comment: MakeComment, card: Card, alice: Any
) -> None:
    run = answered(make_comment, alice)
    body = signed_in(alice).get(f"/cards/{card.pk}/").content.decode()
    assert 'href="?reply_to=athena#comment-form"' in body and "Reply to Athena" in body
    form = re.search(r'<form method="post" action="([^"]+)"[^>]*data-relaybridge-feedback', body)
    assert form is not None
    assert form.group(1) == reverse("relaybridge:reply-feedback", kwargs={"run_id": run.run_id})
    # Only under the agent's reply, not under the person's comment.
    assert body.count("data-relaybridge-reply-actions=") == 1


def test_the_reply_link_pre_fills_the_hand_written_comment_box(
    make_comment: MakeComment, card: Card, alice: Any
) -> None:
    answered(make_comment, alice)
    body = signed_in(alice).get(f"/cards/{card.pk}/?reply_to=athena").content.decode()
    box = re.search(r'<textarea name="comment"[^>]*>([^<]*)</textarea>', body)
    assert box is not None and box.group(1) == "@athena "
    body = signed_in(alice).get(f"/cards/{card.pk}/?reply_to=%22%3E").content.decode()
    box = re.search(r'<textarea name="comment"[^>]*>([^<]*)</textarea>', body)
    assert box is not None and box.group(1) == ""


def test_a_follow_up_posted_through_django_comments(
    settings: Any, make_comment: MakeComment, card: Card, alice: Any, bob: Any
) -> None:
    settings.RELAYBRIDGE_FOLLOW_UP_WINDOW = 300
    answered(make_comment, alice)
    client = signed_in(alice)
    page = client.get(f"/cards/{card.pk}/").content.decode()
    assert "A comment without a mention continues with Athena" in page
    assert f'name="{NO_FOLLOW_UP_FIELD}"' in page

    opted_out = post_comment(client, card, "Noted, thanks.", **{NO_FOLLOW_UP_FIELD: "1"})
    assert not AgentRun.objects.filter(comment=opted_out).exists()
    follow_up = post_comment(client, card, "And who signs it off?")
    (run,) = AgentRun.objects.filter(comment=follow_up)
    assert (run.agent_id, run.requested_by, run.thread_id) == (
        "athena",
        alice,
        f"cards.card-{card.pk}",
    )
    # Someone else's comment is theirs, not a follow-up; a mention is a mention.
    other = post_comment(signed_in(bob), card, "Me too?")
    assert not AgentRun.objects.filter(comment=other).exists()
    mention = post_comment(client, card, "@klyve your view?")
    assert list(AgentRun.objects.filter(comment=mention).values_list("agent_id", flat=True)) == [
        "klyve"
    ]


def test_the_window_closes_on_the_cards_host(
    settings: Any, make_comment: MakeComment, card: Card, alice: Any
) -> None:
    settings.RELAYBRIDGE_FOLLOW_UP_WINDOW = 60
    answered(make_comment, alice, seconds_ago=61)
    late = post_comment(signed_in(alice), card, "Still there?")
    assert not AgentRun.objects.filter(comment=late).exists()


def test_votes_on_the_cards_host(
    make_comment: MakeComment, card: Card, alice: Any, bob: Any
) -> None:
    run = answered(make_comment, alice)
    url = reverse("relaybridge:reply-feedback", kwargs={"run_id": run.run_id})
    assert signed_in(alice).post(url, {"vote": "up"}, **JSON).json()["up"] == 1
    answer = signed_in(bob).post(url, {"vote": "up", "note": "good"}, **JSON).json()
    assert (answer["up"], answer["down"], answer["mine"]) == (2, 0, "up")
    answer = signed_in(bob).post(url, {"vote": "down"}, **JSON).json()
    assert (answer["up"], answer["down"], answer["mine"]) == (1, 1, "down")
    assert ReplyFeedback.objects.filter(run=run).count() == 2
    body = signed_in(bob).get(f"/cards/{card.pk}/").content.decode()
    assert re.search(r'data-relaybridge-feedback-count="down">1<', body)
    assert re.search(r'value="down"[^>]*aria-pressed="true"', body)
