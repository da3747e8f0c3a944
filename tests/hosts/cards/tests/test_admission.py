"""Admission on the cards host: who may call which agent on a card, and quotas."""

from __future__ import annotations

import re
from html import escape
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client

from relaybridge import services
from relaybridge.models import AgentRun
from relaybridge.protocol.codes import ErrorCode
from tests.django import admission_backend

from ..cards.models import Card
from .conftest import MakeComment

pytestmark = pytest.mark.django_db
Status = AgentRun.Status


@pytest.fixture
def guarded(settings: Any) -> Any:
    settings.RELAYBRIDGE_AGENT_PERMISSIONS = {"klyve": "cards.change_card"}
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "tests.django.admission_backend.ObjectPermissionBackend",
    ]
    yield settings
    admission_backend.GRANTS.clear()


def runs_of(comment: Any) -> list[tuple[str, str]]:
    runs = AgentRun.objects.filter(comment=comment).order_by("id")
    return [(run.agent_id, run.status) for run in runs]


def test_a_refused_mention_shows_under_the_comment_on_the_card(
    guarded: Any, make_comment: MakeComment, card: Card, user: Any, client: Client
) -> None:
    comment = make_comment("@athena @klyve ship it")
    assert runs_of(comment) == [("athena", Status.QUEUED), ("klyve", Status.REFUSED)]
    refused = AgentRun.objects.get(comment=comment, agent_id="klyve")
    assert (refused.error_code, refused.charged_to_id) == (ErrorCode.NOT_PERMITTED, user.pk)
    client.force_login(user)
    page = client.get(f"/cards/{card.pk}/").content.decode()
    assert "You may not call @klyve." in page
    assert '<li data-agent-id="klyve" data-not-permitted="true">' in page


def test_an_object_permission_on_the_card_lets_them_call_it(
    guarded: Any, make_comment: MakeComment, card: Card, user: Any
) -> None:
    admission_backend.GRANTS.add((user.pk, "cards.change_card", "cards.card", card.pk))
    assert runs_of(make_comment("@klyve ship it")) == [("klyve", Status.QUEUED)]
    other = Card.objects.create(title="Another")
    assert runs_of(make_comment("@klyve there", content_object=other)) == [
        ("klyve", Status.REFUSED)
    ]
    user.user_permissions.add(Permission.objects.get(codename="change_card"))
    user = get_user_model().objects.get(pk=user.pk)  # a fresh permission cache
    assert runs_of(make_comment("@klyve now", content_object=other, user=user)) == [
        ("klyve", Status.QUEUED)
    ]


def test_a_hop_on_a_card_is_charged_to_the_person_who_started_it(
    settings: Any, make_comment: MakeComment, user: Any
) -> None:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "person", "runs": 1, "per": "hour"}]
    mention = make_comment("@athena ask klyve")
    run = AgentRun.objects.get(comment=mention)
    assert services.claim_for_sending(run.run_id)
    assert services.mark_accepted(run.run_id, "evt_1")
    answer = services.record_reply(run.run_id, "@klyve your turn")
    hop = AgentRun.objects.get(comment=answer)
    assert (hop.status, hop.charged_to_id, hop.error_code) == (
        Status.REFUSED,
        user.pk,
        ErrorCode.QUOTA,
    )
    # "at 14:05", or "tomorrow at 00:05" when the hour ends after midnight.
    assert re.fullmatch(
        r"Klyve's limit for you is reached — it resets (tomorrow )?at \d\d:\d\d\.",
        hop.error_message,
    ), hop.error_message


def test_the_preview_warns_of_a_quota_on_the_card(
    settings: Any, make_comment: MakeComment, card: Card, user: Any, client: Client
) -> None:
    settings.RELAYBRIDGE_QUOTAS = [{"scope": "thread", "runs": 1, "per": "day"}]
    make_comment("@athena first")
    client.force_login(user)
    answer = client.post(
        "/relaybridge/mentions/preview/",
        {"text": "@athena again", "thread": f"cards.card.{card.pk}"},
        HTTP_ACCEPT="application/json",
    ).json()
    assert answer["agents"][0]["refused"].startswith("Athena's limit in this thread is reached")
    (refused,) = [
        run
        for run in AgentRun.objects.filter(comment=make_comment("@athena again"))
        if run.status == Status.REFUSED
    ]
    page = client.get(f"/cards/{card.pk}/").content.decode()
    assert escape(refused.error_message) in page
