"""The run ledger in the admin renders and is read-only."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from project.tasks.models import Comment
from relaybridge import services
from relaybridge.models import AgentRun

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_with_runs(make_comment: Callable[..., Comment]) -> tuple[Client, AgentRun]:
    comment = make_comment("@athena and @klyve, go")
    run = AgentRun.objects.get(comment=comment, agent_id="athena")
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, "evt_admin")
    services.record_first_token(run.run_id)
    services.record_reply(run.run_id, "done", {"tokens_used": 10, "model": "m"})
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(admin)
    return client, run


def test_changelist_renders_with_filters_and_search(
    admin_client_with_runs: tuple[Client, AgentRun],
) -> None:
    client, _ = admin_client_with_runs
    url = reverse("admin:relaybridge_agentrun_changelist")
    page = client.get(url)
    assert page.status_code == 200
    body = page.content.decode()
    assert "athena" in body and "klyve" in body and "replied" in body.lower()
    assert "Add agent run" not in body
    assert client.get(url, {"status__exact": "replied"}).status_code == 200
    assert client.get(url, {"agent_id": "klyve"}).status_code == 200
    searched = client.get(url, {"q": "evt_admin"})
    assert searched.status_code == 200 and "athena" in searched.content.decode()


def test_detail_is_read_only_and_nothing_can_be_added_or_deleted(
    admin_client_with_runs: tuple[Client, AgentRun],
) -> None:
    client, run = admin_client_with_runs
    change_url = reverse("admin:relaybridge_agentrun_change", args=[run.pk])
    page = client.get(change_url)
    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert client.post(change_url, {"status": "failed"}).status_code == 403
    assert client.get(reverse("admin:relaybridge_agentrun_add")).status_code == 403
    delete_url = reverse("admin:relaybridge_agentrun_delete", args=[run.pk])
    assert client.post(delete_url, {"post": "yes"}).status_code == 403
    run.refresh_from_db()
    assert run.status == AgentRun.Status.REPLIED


def test_the_run_shows_who_stopped_and_retried_it_read_only(
    admin_client_with_runs: tuple[Client, AgentRun], make_comment: Callable[..., Comment]
) -> None:
    client, _ = admin_client_with_runs
    run = AgentRun.objects.get(comment=make_comment("@athena once more"), agent_id="athena")
    stopper = get_user_model().objects.create_user("stopper", first_name="Sam")
    retrier = get_user_model().objects.create_user("retrier")
    services.claim_for_sending(run.run_id)
    assert services.mark_stopped(run.run_id, "half", by=stopper)
    assert services.retry_run(run.run_id, by=retrier)
    change_url = reverse("admin:relaybridge_agentrun_change", args=[run.pk])
    body = client.get(change_url).content.decode()
    assert "Control" in body
    for label, user in (("Stopped by", stopper), ("Retried by", retrier)):
        field = body[body.index(f"{label}:") :]
        shown = field[: field.index("</div>")]
        assert user.get_username() in shown, shown
        assert "<select" not in shown and "<input" not in shown  # read-only
    assert "Stopped at:" in body and "Retried at:" in body


def test_example_admin_pages_render(admin_client_with_runs: tuple[Client, Any]) -> None:
    client, run = admin_client_with_runs
    task_id = run.comment.task_id
    assert client.get(reverse("admin:tasks_task_change", args=[task_id])).status_code == 200
    assert client.get(reverse("admin:tasks_comment_changelist")).status_code == 200


def test_the_ledger_shows_the_relay_workers_status(
    admin_client_with_runs: tuple[Client, AgentRun],
) -> None:
    import os
    import time

    from relaybridge.worker.status import STATUS_CACHE_KEY, WorkerStatus, write_status

    client, _ = admin_client_with_runs
    url = reverse("admin:relaybridge_agentrun_changelist")
    page = client.get(url).content.decode()
    assert "No relay worker is running" in page
    assert 'href="https://relay.ckgworks.com"' in page

    status = WorkerStatus(
        state="auth_failed",
        identity="host:abc",
        pid=os.getpid(),
        relay_url="wss://relay.example/v1/ws/app",
        last_error="Relay refused the app token (HTTP 401)",
        next_attempt_at=time.time() + 40,
    )
    write_status(status.as_dict())
    try:
        page = client.get(url).content.decode()
    finally:
        from django.core.cache import cache

        cache.delete(STATUS_CACHE_KEY)
    assert "No relay worker is running" not in page
    assert "Relay rejected the app token" in page
    assert "HTTP 401" in page


def test_the_agents_page_lists_the_allow_list_before_discovery(
    admin_client_with_runs: tuple[Client, AgentRun],
) -> None:
    from django.core.cache import cache

    from relaybridge.conf import relay_settings

    cache.delete(relay_settings.AGENTS_CACHE_KEY)
    client, _ = admin_client_with_runs
    ledger = client.get(reverse("admin:relaybridge_agentrun_changelist")).content.decode()
    agents_url = reverse("admin:relaybridge_agents")
    assert f'href="{agents_url}"' in ledger
    page = client.get(agents_url).content.decode()
    assert "Relay has not been asked yet" in page
    for agent_id in relay_settings.AGENTS:
        assert f'data-agent-id="{agent_id}"' in page
    assert "No relay worker is running" in page
    assert 'href="https://relay.ckgworks.com"' in page


def test_the_agents_page_shows_discovery_unavailable_agents_and_run_counts(
    admin_client_with_runs: tuple[Client, AgentRun], make_comment: Callable[..., Comment]
) -> None:
    from relaybridge.agents import mark_unavailable, store_directory

    store_directory(
        [
            {"agent_id": "athena", "name": "Athena", "description": "Summaries <b>fast</b>"},
            {"agent_id": "klyve", "name": "Klyve", "description": ""},
        ]
    )
    mark_unavailable("klyve")
    client, _ = admin_client_with_runs
    failed = AgentRun.objects.get(agent_id="klyve")
    services.claim_for_sending(failed.run_id)
    services.record_error(failed.run_id, "AGENT_NOT_FOUND", "no such agent")
    make_comment("@athena once more")  # one athena run still queued

    page = client.get(reverse("admin:relaybridge_agents")).content.decode()
    assert "From Relay&#x27;s discovery" in page or "From Relay's discovery" in page
    assert "Summaries &lt;b&gt;fast&lt;/b&gt;" in page  # descriptions are escaped
    athena_row = page.split('data-agent-id="athena"')[1].split("</tr>")[0]
    klyve_row = page.split('data-agent-id="klyve"')[1].split("</tr>")[0]
    assert "available" in athena_row and "unavailable" not in athena_row
    assert "unavailable" in klyve_row
    # athena: the reply of the fixture ended, the new mention is going; klyve failed once.
    assert ">1</a></td>" in athena_row.split("<td>")[-2]
    assert ">1</a></td>" in klyve_row.split("<td>")[-1]


def test_the_agents_page_needs_the_view_permission(db: None) -> None:
    staff = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(reverse("admin:relaybridge_agents")).status_code == 403
    anonymous = Client().get(reverse("admin:relaybridge_agents"))
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]


def test_refused_runs_have_their_filter_and_show_the_reason(
    admin_client_with_runs: tuple[Client, AgentRun],
    make_comment: Callable[..., Comment],
    settings: Any,
) -> None:
    client, _ = admin_client_with_runs
    settings.RELAYBRIDGE_AGENT_HOPS = True
    settings.RELAYBRIDGE_AGENT_HOP_LIMIT = 0
    refused = AgentRun.objects.get(comment=make_comment("@klyve look", agent_id="athena"))
    assert refused.status == AgentRun.Status.REFUSED
    url = reverse("admin:relaybridge_agentrun_changelist")
    body = client.get(url).content.decode()
    assert "?status__exact=refused" in body and "?hop_depth=1" in body
    listed = client.get(url, {"status__exact": "refused"}).content.decode()
    assert "RELAYBRIDGE_HOP_LIMIT" in listed
    assert listed.count('class="field-agent_id"') == 1  # the refused run alone
    detail = client.get(reverse("admin:relaybridge_agentrun_change", args=[refused.pk]))
    assert "too many agent replies in this thread" in detail.content.decode()
