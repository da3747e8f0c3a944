"""The card page reuses an agent reply's stored HTML: page views never render it again.

Run from ``tests/security/test_render_once.py`` (and with the rest of this suite)
under the cards settings. The renderer's calls are counted by wrapping the real
parser of :mod:`relaybridge.rendering`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import django_comments
import pytest
from django.test import Client

from relaybridge import rendering, services
from relaybridge.models import AgentRun

from ..cards.models import Card
from .conftest import MakeComment

pytestmark = pytest.mark.django_db

Comment = django_comments.get_model()
REPLY = "Only **the status page** is left."


class Parses:
    def __init__(self) -> None:
        self.calls = 0

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        return counted


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    counter = Parses()
    monkeypatch.setattr(rendering._md, "parse", counter.wrap(rendering._md.parse))
    return counter


@pytest.fixture
def signed_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def card_page(client: Client, card: Card) -> str:
    response = client.get(f"/cards/{card.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_a_card_reply_is_rendered_once_when_saved_and_never_by_page_views(
    signed_in: Client, make_comment: MakeComment, card: Card, parses: Parses
) -> None:
    mention = make_comment("@athena what is left?")
    run = AgentRun.objects.get(comment=mention)
    reply = services.record_reply(run.run_id, REPLY)
    assert parses.calls == 1
    run.refresh_from_db()
    assert run.reply_comment_id == reply.pk
    assert "<strong>the status page</strong>" in run.reply_html

    for _ in range(3):
        html = card_page(signed_in, card)
        assert f'data-relaybridge-comment-id="{reply.pk}" data-agent="athena"' in html
        assert "<strong>the status page</strong>" in html
    assert parses.calls == 1


def test_an_edited_card_reply_is_rendered_again_once(
    signed_in: Client, make_comment: MakeComment, card: Card, parses: Parses
) -> None:
    mention = make_comment("@athena what is left?")
    reply = services.record_reply(AgentRun.objects.get(comment=mention).run_id, REPLY)
    Comment.objects.filter(pk=reply.pk).update(comment="Nothing *at all*.")
    before = parses.calls

    assert "<em>at all</em>" in card_page(signed_in, card)
    assert "<em>at all</em>" in card_page(signed_in, card)
    assert parses.calls == before + 1
