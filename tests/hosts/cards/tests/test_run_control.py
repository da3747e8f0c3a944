"""Stop and Retry on a card belong to who asked (django_comments' ``user``), staff, and
holders of ``relaybridge.control_agentrun``; the card page offers them to no one else."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from relaybridge import services
from relaybridge.adapters import get_adapter
from relaybridge.contrib.django_comments import DjangoCommentsAdapter
from relaybridge.models import AgentRun

from ..cards.models import Card
from .conftest import MakeComment

pytestmark = pytest.mark.django_db

Status = AgentRun.Status
JSON: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}


@pytest.fixture
def others(db: None) -> dict[str, Any]:
    make = get_user_model().objects.create_user
    granted = make("granted", password="pw")
    granted.user_permissions.add(
        Permission.objects.get(content_type__app_label="relaybridge", codename="control_agentrun")
    )
    return {
        "bystander": make("bystander", password="pw"),
        "staff": make("staff", password="pw", is_staff=True),
        "granted": granted,
    }


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def streaming_run(make_comment: MakeComment) -> AgentRun:
    """Alice's @athena on the card, streaming."""
    mention = make_comment("@athena what is left?")
    run = AgentRun.objects.get(comment=mention)
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, "evt_card")
    services.record_first_token(run.run_id)
    run.refresh_from_db()
    assert run.status == Status.STREAMING
    return run


def button(action: str, run: AgentRun) -> str:
    return reverse(f"relaybridge:{action}-run", kwargs={"run_id": run.run_id})


def test_the_comments_author_may_control_its_runs_and_a_bystander_may_not(
    make_comment: MakeComment, user: Any, others: dict[str, Any]
) -> None:
    adapter = get_adapter()
    assert isinstance(adapter, DjangoCommentsAdapter)
    run = streaming_run(make_comment)
    assert run.requested_by == user
    assert adapter.can_control(user, run) is True
    assert adapter.can_control(others["bystander"], run) is False
    assert adapter.can_control(others["staff"], run) is True
    assert adapter.can_control(others["granted"], run) is True


def test_a_bystanders_stop_and_retry_are_refused_and_change_nothing(
    make_comment: MakeComment, others: dict[str, Any]
) -> None:
    run = streaming_run(make_comment)
    bystander = signed_in(others["bystander"])
    assert bystander.post(button("stop", run), **JSON).status_code == 403
    stored = AgentRun.objects.get(pk=run.pk)
    assert (stored.status, stored.stopped_by, stored.stopped_at) == (Status.STREAMING, None, None)

    services.mark_stopped(run.run_id, "half")
    assert bystander.post(button("retry", run), **JSON).status_code == 403
    stored = AgentRun.objects.get(pk=run.pk)
    assert (stored.status, stored.retried_by, stored.retried_at) == (Status.STOPPED, None, None)


def test_the_asker_stops_and_staff_retries_and_the_ledger_says_so(
    make_comment: MakeComment, user: Any, others: dict[str, Any]
) -> None:
    run = streaming_run(make_comment)
    assert signed_in(user).post(button("stop", run), **JSON).status_code == 200
    assert signed_in(others["staff"]).post(button("retry", run), **JSON).status_code == 200
    run.refresh_from_db()
    assert (run.stopped_by, run.retried_by) == (user, others["staff"])
    assert run.stopped_at is not None and run.retried_at is not None


def test_the_card_page_offers_stop_only_to_those_who_may_press_it(
    make_comment: MakeComment, card: Card, user: Any, others: dict[str, Any]
) -> None:
    run = streaming_run(make_comment)
    form = f'action="{button("stop", run)}"'
    for viewer in (user, others["staff"], others["granted"]):
        assert form in signed_in(viewer).get(f"/cards/{card.pk}/").content.decode()
    html = signed_in(others["bystander"]).get(f"/cards/{card.pk}/").content.decode()
    assert f'data-relaybridge-run="{run.run_id}"' in html  # the run is shown
    assert form not in html and "data-relaybridge-run-action" not in html
