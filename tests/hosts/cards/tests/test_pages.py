"""The card page: django_comments' markup, relaybridge's tags, posting through django_comments."""

from __future__ import annotations

import re
from typing import Any

import django_comments
import pytest
from django.test import Client
from django_comments.forms import CommentForm

from relaybridge import services
from relaybridge.models import AgentRun

from ..cards.models import Card
from .conftest import MakeComment

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def test_the_page_shows_people_and_agents_in_django_comments_markup(
    signed_in: Client, make_comment: MakeComment, card: Card
) -> None:
    mention = make_comment("@athena what is left?")
    run = AgentRun.objects.get(comment=mention)
    reply = services.record_reply(run.run_id, "Only **the status page**.")
    html = signed_in.get(f"/cards/{card.pk}/").content.decode()

    assert f'id="c{mention.pk}" class="comment" data-relaybridge-comment-id="{mention.pk}"' in html
    assert (
        f'id="c{reply.pk}" class="comment comment--agent" '
        f'data-relaybridge-comment-id="{reply.pk}" data-agent="athena"'
    ) in html
    assert "<strong>the status page</strong>" in html  # the agent's Markdown, sanitized
    assert f'data-relaybridge-thread="cards.card.{card.pk}"' in html
    assert f'data-relaybridge-ws="/ws/tasks/cards.card.{card.pk}/"' in html
    assert f'data-relaybridge-comment-runs="{mention.pk}"' in html  # {% relaybridge_runs %}
    assert 'id="relaybridge-mention-hint"' in html


def test_the_page_s_queries_do_not_grow_with_its_comments(
    signed_in: Client,
    make_comment: MakeComment,
    card: Card,
    django_assert_max_num_queries: Any,
) -> None:
    for n in range(3):
        mention = make_comment(f"@athena question {n}", user=None, user_name="Guest")
        services.record_reply(AgentRun.objects.get(comment=mention).run_id, f"answer {n}")
    page = signed_in.get(f"/cards/{card.pk}/")
    with django_assert_max_num_queries(page_queries := _count_queries(signed_in, card)):
        signed_in.get(f"/cards/{card.pk}/")
    for n in range(3):
        make_comment(f"@athena more {n}", user=None, user_name="Guest")
    assert _count_queries(signed_in, card) == page_queries, "queries grew with the comments"
    assert page.content.decode().count('class="comment comment--agent"') == 3


def _count_queries(client: Client, card: Card) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/cards/{card.pk}/").status_code == 200
    return len(queries)


def test_a_comment_posted_through_django_comments_starts_a_run(
    signed_in: Client, card: Card, user: Any
) -> None:
    data = CommentForm(card).generate_security_data()
    data.update(comment="@athena what is left?", honeypot="", next=f"/cards/{card.pk}/")
    user.email = "alice@example.com"
    user.save()
    response = signed_in.post("/comments/post/", data)
    assert response.status_code == 302
    assert re.fullmatch(rf"/cards/{card.pk}/\?c=\d+", response["Location"])
    comment = django_comments.get_model().objects.get()
    assert comment.user == user and comment.content_object == card
    (run,) = AgentRun.objects.filter(comment=comment)
    assert run.agent_id == "athena" and run.thread_key == f"cards.card.{card.pk}"


def test_the_page_is_for_signed_in_people(client: Client, card: Card) -> None:
    response = client.get(f"/cards/{card.pk}/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
