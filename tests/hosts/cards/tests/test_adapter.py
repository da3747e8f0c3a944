"""DjangoCommentsAdapter on the cards host: a comment's thread is the object it is on."""

from __future__ import annotations

from typing import Any

import django_comments
import pytest
from django.contrib.auth.models import AnonymousUser
from django.contrib.contenttypes.models import ContentType

from relaybridge import services
from relaybridge.adapters import get_adapter
from relaybridge.contrib.django_comments import DjangoCommentsAdapter
from relaybridge.models import AgentRun

from ..cards.models import Board, Card
from .conftest import MakeComment

pytestmark = pytest.mark.django_db


def adapter() -> DjangoCommentsAdapter:
    configured = get_adapter()
    assert isinstance(configured, DjangoCommentsAdapter)
    return configured


def test_the_host_configures_the_shipped_adapter_by_settings_alone() -> None:
    assert adapter().comment_model() is django_comments.get_model()
    assert adapter().check() == []


def test_a_comment_s_thread_is_the_card_it_is_on(
    make_comment: MakeComment, card: Card, user: Any
) -> None:
    comment = make_comment("Is the status page fixed?")
    assert adapter().text(comment) == "Is the status page fixed?"
    assert adapter().thread_for(comment) == card
    assert adapter().thread_id(card) == f"cards.card-{card.pk}"
    assert adapter().thread_key(card) == f"cards.card.{card.pk}"
    assert adapter().comment_thread_key(comment) == f"cards.card.{card.pk}"
    assert adapter().thread_by_key(f"cards.card.{card.pk}") == card
    assert adapter().thread_title(card) == "Launch checklist"
    assert adapter().sender(comment) == {"id": str(user.pk), "name": "Alice Ng"}
    assert adapter().requested_by(comment) == user


def test_thread_keys_that_name_nothing_or_an_excluded_model_find_nothing(
    card: Card, board: Board
) -> None:
    for bad in (
        "cards.card.999999",
        "cards.card.nope",
        "cards.card.",
        "cards.card",
        "",
        "nosuch.model.1",
        "auth.user.1",  # installed, but no part of RELAYBRIDGE_DJANGO_COMMENTS_MODELS
        f"cards.board.{board.pk}",
    ):
        assert adapter().thread_by_key(bad) is None, bad


def test_without_a_scope_any_model_is_a_thread(board: Board, settings: Any) -> None:
    settings.RELAYBRIDGE_DJANGO_COMMENTS_MODELS = None
    assert adapter().thread_by_key(f"cards.board.{board.pk}") == board


def test_handles_only_the_participating_models_at_one_cached_lookup(
    make_comment: MakeComment,
    board: Board,
    settings: Any,
    django_assert_max_num_queries: Any,
    django_assert_num_queries: Any,
) -> None:
    on_card = make_comment("on the card")
    on_board = make_comment("on the board", content_object=board)
    ContentType.objects.clear_cache()
    with django_assert_max_num_queries(1):
        assert adapter().handles(on_card) is True
    with django_assert_num_queries(0):
        assert adapter().handles(on_card) is True
    with django_assert_max_num_queries(1):
        assert adapter().handles(on_board) is False
    settings.RELAYBRIDGE_DJANGO_COMMENTS_MODELS = None
    with django_assert_num_queries(0):
        assert adapter().handles(on_board) is True


def test_an_anonymous_comment_is_sent_under_the_name_it_was_posted_with(
    make_comment: MakeComment,
) -> None:
    comment = make_comment("hello", user=None, user_name="Guest Grace")
    assert adapter().sender(comment) == {"id": "", "name": "Guest Grace"}
    assert adapter().requested_by(comment) is None
    assert adapter().is_agent_comment(comment) is None


def test_a_person_s_comment_is_known_without_a_query(
    make_comment: MakeComment, django_assert_num_queries: Any
) -> None:
    comment = django_comments.get_model().objects.get(pk=make_comment("hi").pk)
    with django_assert_num_queries(0):
        assert adapter().is_agent_comment(comment) is None


def test_an_agent_s_reply_is_known_from_the_run_ledger_in_one_query(
    make_comment: MakeComment, django_assert_num_queries: Any
) -> None:
    mention = make_comment("@athena what is left?")
    run = AgentRun.objects.get(comment=mention, agent_id="athena")
    reply = services.record_reply(run.run_id, "Only the status page.")
    fresh = django_comments.get_model().objects.get(pk=reply.pk)
    with django_assert_num_queries(1):
        assert adapter().is_agent_comment(fresh) == "athena"
    with django_assert_num_queries(0):
        assert adapter().is_agent_comment(fresh) == "athena"
        assert adapter().sender(fresh) == {"id": "athena", "name": "Athena"}
    assert adapter().requested_by(fresh) is None


def test_pasted_tokens_are_blanked_before_the_comment_is_stored(
    make_comment: MakeComment,
) -> None:
    comment = make_comment("my token is rlk_live_abcdef123456, @athena help")
    stored = django_comments.get_model().objects.get(pk=comment.pk).comment
    assert "rlk_" not in stored and "[redacted]" in stored


def test_history_holds_the_public_comments_on_the_same_card_with_their_authors(
    make_comment: MakeComment, card: Card, board: Board, user: Any
) -> None:
    make_comment("first")
    make_comment("spam", is_removed=True)
    make_comment("awaiting moderation", is_public=False)
    make_comment("elsewhere", content_object=board)
    make_comment("from a guest", user=None, user_name="Guest Grace")
    other_card = Card.objects.create(title="Other")
    make_comment("other card", content_object=other_card)
    asked = make_comment("@athena summarize")
    run = AgentRun.objects.get(comment=asked, agent_id="athena")
    services.record_reply(run.run_id, "A summary.")
    mention = make_comment("@klyve and you?")
    history = adapter().history(mention, 10)
    assert history == [
        {"author": "Alice Ng", "text": "first"},
        {"author": "Guest Grace", "text": "from a guest"},
        {"author": "Alice Ng", "text": "@athena summarize"},
        {"author": "Athena", "text": "A summary."},
    ]
    assert adapter().history(mention, 2) == history[-2:]
    assert adapter().history(mention, 0) == []


def test_the_stream_is_for_signed_in_people(user: Any, card: Card) -> None:
    assert adapter().can_view(user, card) is True
    assert adapter().can_view(AnonymousUser(), card) is False


def test_a_comment_held_for_moderation_or_removed_has_no_text_but_is_redacted(
    make_comment: MakeComment,
) -> None:
    held = make_comment("@athena my token is rlk_live_abcdef123456", is_public=False)
    removed = make_comment("@athena hello", is_removed=True)
    assert adapter().handles(held) and adapter().handles(removed)
    assert adapter().text(held) == adapter().text(removed) == ""
    stored = django_comments.get_model().objects.get(pk=held.pk).comment
    assert "rlk_" not in stored and "[redacted]" in stored
