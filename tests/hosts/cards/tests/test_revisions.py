"""Edits, deletes and Regenerate on the cards host (django-contrib-comments)."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from relaybridge import services
from relaybridge.models import AgentRun
from relaybridge.protocol.codes import ErrorCode

from ..cards.models import Card
from .conftest import MakeComment

pytestmark = pytest.mark.django_db

Status = AgentRun.Status


def runs_of(comment: Any) -> list[AgentRun]:
    return list(AgentRun.objects.filter(comment=comment).order_by("agent_id", "revision"))


@pytest.fixture
def signed_in(client: Client, user: Any) -> Client:
    client.force_login(user)
    return client


def page(client: Client, card: Card) -> str:
    response = client.get(f"/cards/{card.pk}/")
    assert response.status_code == 200
    return response.content.decode()


def test_an_edit_while_the_run_is_going_stops_it_and_asks_again(
    make_comment: MakeComment,
) -> None:
    comment = make_comment("@athena check the launch list")
    (first,) = runs_of(comment)
    AgentRun.objects.filter(pk=first.pk).update(status=Status.STREAMING)
    comment.comment = "@athena check the launch list and the press kit"
    comment.save()
    old, new = runs_of(comment)
    assert (old.status, old.error_code) == (Status.STOPPED, ErrorCode.EDITED)
    assert (new.revision, new.status) == (2, Status.QUEUED)
    assert new.question_excerpt == comment.comment


def test_an_edit_after_the_reply_is_offered_and_asks_nothing_by_itself(
    make_comment: MakeComment, signed_in: Client, card: Card
) -> None:
    comment = make_comment("@athena check the launch list")
    (first,) = runs_of(comment)
    assert services.record_reply(first.run_id, "All set.") is not None
    comment.comment = "@athena check the launch list again"
    comment.save()
    assert len(runs_of(comment)) == 1
    body = page(signed_in, card)
    url = f"/relaybridge/runs/{first.run_id}/ask-again/"
    assert f'action="{url}"' in body and "Ask Athena again with the edited text" in body
    response = signed_in.post(url, HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert [run.revision for run in runs_of(comment)] == [1, 2]


def test_deleting_a_comment_stops_its_runs_and_keeps_them(make_comment: MakeComment) -> None:
    comment = make_comment("@athena " + "x" * 300)
    (run,) = runs_of(comment)
    comment.delete()
    run.refresh_from_db()
    assert run.comment_id is None
    assert (run.status, run.error_code) == (Status.STOPPED, ErrorCode.COMMENT_DELETED)
    assert run.question_excerpt == ("@athena " + "x" * 300)[:200]


def test_regenerate_twice_makes_two_labelled_revisions(
    make_comment: MakeComment, signed_in: Client, card: Card
) -> None:
    comment = make_comment("@athena draft the announcement")
    (first,) = runs_of(comment)
    assert services.record_reply(first.run_id, "Draft one.") is not None
    for number in (2, 3):
        latest = runs_of(comment)[-1]
        response = signed_in.post(
            f"/relaybridge/runs/{latest.run_id}/regenerate/", HTTP_ACCEPT="application/json"
        )
        assert response.status_code == 200, response.content
        new = runs_of(comment)[-1]
        assert (new.revision, new.regenerates_id) == (number, latest.pk)
        assert services.record_reply(new.run_id, f"Draft {number}.") is not None
    body = page(signed_in, card)
    assert body.count("Regenerated answer") == 2
    for run in runs_of(comment):
        assert f'action="/relaybridge/runs/{run.run_id}/regenerate/"' in body
