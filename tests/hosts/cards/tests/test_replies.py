"""A mention on a card comment: one run, one reply saved as the agent's comment, no loop."""

from __future__ import annotations

from typing import Any

import django_comments
import pytest

from relaybridge import services
from relaybridge.models import AgentRun

from ..cards.models import Board, Card
from .conftest import MakeComment

pytestmark = pytest.mark.django_db

Comment = django_comments.get_model()


def test_a_mention_on_a_card_comment_creates_a_run_and_sends_the_card_s_context(
    make_comment: MakeComment,
    card: Card,
    user: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    make_comment("Who owns the status page?")
    with django_capture_on_commit_callbacks(execute=True):
        mention = make_comment("@athena summarize this card")
    (run,) = AgentRun.objects.filter(comment=mention)
    assert run.agent_id == "athena"
    assert run.thread_id == f"cards.card-{card.pk}"
    assert run.thread_key == f"cards.card.{card.pk}"
    assert run.requested_by == user
    # Dispatched (eager Celery): the payload was built through the adapter.
    assert run.status == AgentRun.Status.SENDING
    assert run.payload is not None
    assert run.payload["message"] == "@athena summarize this card"
    assert run.payload["task_id"] == f"cards.card-{card.pk}"
    assert run.payload["task_title"] == "Launch checklist"
    assert run.payload["sender"] == {"id": str(user.pk), "name": "Alice Ng"}
    assert run.payload["comments"] == [{"author": "Alice Ng", "text": "Who owns the status page?"}]


def test_the_reply_is_saved_once_as_a_comment_by_the_agent_on_the_card(
    make_comment: MakeComment, card: Card
) -> None:
    mention = make_comment("@athena what is left?")
    run = AgentRun.objects.get(comment=mention)
    reply = services.record_reply(run.run_id, "Only **the status page**.")
    assert services.record_reply(run.run_id, "Only **the status page**.") is None

    saved = Comment.objects.exclude(pk=mention.pk).get()
    assert saved.pk == reply.pk
    assert saved.content_object == card
    assert saved.user is None
    assert saved.user_name == "Athena"
    assert saved.name == "Athena"
    assert saved.site_id == 1
    assert saved.is_public and not saved.is_removed
    assert saved.comment == "Only **the status page**."
    run.refresh_from_db()
    assert run.status == AgentRun.Status.REPLIED
    assert run.reply_comment_id == saved.pk


def test_a_reply_quoting_the_mention_calls_no_agent(make_comment: MakeComment) -> None:
    mention = make_comment("@athena what is left?")
    run = AgentRun.objects.get(comment=mention)
    reply = services.record_reply(run.run_id, 'You asked "@athena what is left?"; ask @klyve too.')
    assert not AgentRun.objects.filter(comment=reply).exists()
    assert AgentRun.objects.count() == 1


def test_with_agent_hops_a_reply_calls_the_other_agent_once_one_hop_down(
    make_comment: MakeComment, settings: Any
) -> None:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    mention = make_comment("@athena what is left?")
    run = AgentRun.objects.get(comment=mention)
    reply = services.record_reply(run.run_id, "@athena says: @klyve, check the numbers.")
    (hop,) = AgentRun.objects.filter(comment=reply)
    assert hop.agent_id == "klyve"
    assert hop.hop_depth == 1
    assert hop.requested_by is None


def test_comments_on_models_outside_the_scope_call_no_agent(
    make_comment: MakeComment, board: Board, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        comment = make_comment("@athena summarize this board", content_object=board)
    assert callbacks == []
    assert not AgentRun.objects.filter(comment=comment).exists()


def test_without_a_scope_comments_on_any_model_call_agents(
    make_comment: MakeComment, board: Board, settings: Any
) -> None:
    settings.RELAYBRIDGE_DJANGO_COMMENTS_MODELS = None
    comment = make_comment("@athena summarize this board", content_object=board)
    (run,) = AgentRun.objects.filter(comment=comment)
    assert run.thread_key == f"cards.board.{board.pk}"


def test_a_comment_held_for_moderation_calls_agents_once_approved(
    make_comment: MakeComment,
) -> None:
    comment = make_comment("@athena summarize", is_public=False)
    assert not AgentRun.objects.filter(comment=comment).exists()
    comment.is_public = True
    comment.save()
    (run,) = AgentRun.objects.filter(comment=comment)
    assert run.agent_id == "athena"


def test_a_hop_waits_in_the_lane_of_the_person_who_asked_first(
    make_comment: MakeComment, settings: Any, user: Any
) -> None:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    run = AgentRun.objects.get(comment=make_comment("@athena what is left?"))
    reply = services.record_reply(run.run_id, "@klyve, check the numbers.")
    (hop,) = AgentRun.objects.filter(comment=reply)
    assert hop.requested_by is None
    assert services.asker_key(run) == services.asker_key(hop) == str(user.pk)
