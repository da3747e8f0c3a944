"""The task list and task page: sign-in, comments, agent replies, runs, the comment box."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from project.tasks.models import Comment, Task
from relaybridge import services
from relaybridge.agents import mark_unavailable, store_directory
from relaybridge.models import AgentRun
from relaybridge.protocol.codes import ErrorCode

pytestmark = pytest.mark.django_db


def page(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def post_form(client: Client, url: str, data: dict[str, str]) -> Any:
    """POST as a browser would: with the CSRF token the page's form carries."""
    page(client, url)
    token = client.cookies["csrftoken"].value
    return client.post(url, {**data, "csrfmiddlewaretoken": token})


def detail_url(task: Task) -> str:
    return reverse("tasks:task_detail", args=[task.pk])


def test_the_pages_need_a_signed_in_user(task: Task) -> None:
    client = Client()
    login = reverse("tasks:login")
    for url in (reverse("tasks:task_list"), detail_url(task)):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(f"{login}?next=")
    response = client.post(detail_url(task), {"body": "@athena hi"})
    assert response.status_code == 302
    assert not Comment.objects.exists()


def test_signing_in_leads_to_the_page_asked_for(user: Any, task: Task) -> None:
    client = Client(enforce_csrf_checks=True)
    login = reverse("tasks:login")
    assert "Sign in" in page(client, login)
    token = client.cookies["csrftoken"].value
    response = client.post(
        login,
        {
            "username": "alice",
            "password": "pw",
            "next": detail_url(task),
            "csrfmiddlewaretoken": token,
        },
    )
    assert response.status_code == 302 and response["Location"] == detail_url(task)
    assert "Q2 Roadmap Review" in page(client, detail_url(task))


def test_the_list_shows_each_task_with_its_comment_count(
    client_in: Client, task: Task, user: Any
) -> None:
    other = Task.objects.create(title="Onboarding <checklist>")
    Comment.objects.create(task=task, author=user, body="one")
    Comment.objects.create(task=task, agent_id="athena", body="two")
    body = page(client_in, reverse("tasks:task_list"))
    assert f'href="{detail_url(task)}"' in body and f'href="{detail_url(other)}"' in body
    assert "2 comments" in body and "0 comments" in body
    assert "Onboarding &lt;checklist&gt;" in body


def test_the_task_page_shows_comments_oldest_first_people_and_agents_apart(
    client_in: Client, task: Task, user: Any
) -> None:
    Comment.objects.create(task=task, author=user, body="first, by a person")
    Comment.objects.create(task=task, agent_id="athena", body="second, **by Athena**")
    body = page(client_in, detail_url(task))
    assert "Plan the quarter." in body
    assert body.index("first, by a person") < body.index("<strong>by Athena</strong>")
    assert "Alice Ng" in body
    agent_article = body[body.index("comment--agent") :]
    assert 'class="badge badge--agent"' in agent_article
    assert ">Athena</strong>" in agent_article and "AI-generated" in agent_article
    person_article = body[body.index("comment--person") : body.index("comment--agent")]
    assert "AI-generated" not in person_article


def test_agent_html_is_sanitized_and_people_text_is_escaped(
    client_in: Client, task: Task, user: Any
) -> None:
    Comment.objects.create(task=task, author=user, body="I say <b>bold</b> & <script>x</script>")
    Comment.objects.create(
        task=task,
        agent_id="athena",
        body="Hi <script>alert(1)</script> [x](javascript:alert(2)) <img src=http://e.x/i.png>",
    )
    body = page(client_in, detail_url(task))
    assert "<script>" not in body  # only relaybridge's data block, which has attributes
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;script&gt;" in body
    assert "<b>bold</b>" not in body
    assert 'href="javascript:' not in body and "<img" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_posting_a_mention_saves_the_comment_starts_one_run_and_redirects(
    client_in: Client, task: Task, user: Any, django_capture_on_commit_callbacks: Any
) -> None:
    url = detail_url(task)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_form(client_in, url, {"body": "@athena summarize this task"})
    assert response.status_code == 302
    assert response["Location"] == f"{url}#comment-form"
    comment = Comment.objects.get()
    assert (comment.task, comment.author, comment.agent_id) == (task, user, "")
    assert comment.body == "@athena summarize this task"
    run = AgentRun.objects.get()
    assert (run.comment, run.agent_id, run.requested_by) == (comment, "athena", user)
    assert len(callbacks) == 1
    run.refresh_from_db()
    assert run.status == AgentRun.Status.SENDING  # dispatched, without waiting for Athena

    body = page(client_in, url)
    assert "Athena is thinking…" in body
    assert f'data-relaybridge-run="{run.run_id}"' in body


def test_an_empty_comment_shows_an_error_and_saves_nothing(client_in: Client, task: Task) -> None:
    response = post_form(client_in, detail_url(task), {"body": "   "})
    assert response.status_code == 400
    body = response.content.decode()
    assert "Write something before posting." in body
    assert 'aria-invalid="true"' in body
    assert not Comment.objects.exists() and not AgentRun.objects.exists()


def test_a_failed_run_shows_its_reason_and_a_retry_form(
    client_in: Client, task: Task, user: Any
) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@offline are you there?")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.record_error(run.run_id, ErrorCode.AGENT_NOT_FOUND, "Offline does not exist <here>")
    run.refresh_from_db()
    assert run.status == AgentRun.Status.FAILED

    body = page(client_in, detail_url(task))
    placeholder = body[body.index(f'id="relaybridge-run-{run.run_id}"') :]
    assert "Offline does not exist &lt;here&gt;" in placeholder
    retry = f'action="/relaybridge/runs/{run.run_id}/retry/"'
    assert retry in placeholder
    form = placeholder[placeholder.index(retry) : placeholder.index("</form>")]
    assert re.search(r'name="csrfmiddlewaretoken" value="[^"]+"', form)
    assert "Retry" in form
    assert f"/runs/{run.run_id}/stop/" not in body


def test_a_streaming_run_offers_stop(client_in: Client, task: Task, user: Any) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@athena go on")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, "evt_1")
    services.record_first_token(run.run_id)
    body = page(client_in, detail_url(task))
    assert "Athena is writing…" in body
    assert f'action="/relaybridge/runs/{run.run_id}/stop/"' in body
    assert f"/runs/{run.run_id}/retry/" not in body


def test_a_retrying_run_shows_the_countdown_and_a_stopped_one_its_partial_text(
    client_in: Client, task: Task, user: Any
) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@offline and @athena, hi")
    offline = AgentRun.objects.get(comment=comment, agent_id="offline")
    athena = AgentRun.objects.get(comment=comment, agent_id="athena")
    services.claim_for_sending(offline.run_id)
    services.record_error(
        offline.run_id, ErrorCode.AGENT_OFFLINE, "Offline is offline", 4, schedule=False
    )
    services.claim_for_sending(athena.run_id)
    services.mark_accepted(athena.run_id, "evt_3")
    services.mark_stopped(athena.run_id, "The first <half>")
    body = page(client_in, detail_url(task))
    assert re.search(r"Offline is offline — retrying in [34] s", body)
    stopped = body[body.index(f'id="relaybridge-run-{athena.run_id}"') :]
    assert "Athena was stopped" in stopped and "The first &lt;half&gt;" in stopped
    assert f'action="/relaybridge/runs/{athena.run_id}/retry/"' in stopped


def test_replied_runs_are_not_shown_as_placeholders(
    client_in: Client, task: Task, user: Any
) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@athena hello")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, "evt_2")
    services.record_reply(run.run_id, "Hello **there**", {})
    body = page(client_in, detail_url(task))
    assert "data-relaybridge-run=" not in body
    assert "<strong>there</strong>" in body


def test_the_stream_area_carries_the_socket_path_urls_and_runs(
    client_in: Client, task: Task, user: Any
) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@athena hi")
    run = AgentRun.objects.get(comment=comment)
    body = page(client_in, detail_url(task))
    assert f'data-relaybridge-ws="/ws/tasks/{task.pk}/"' in body
    assert 'data-relaybridge-retry-url="/relaybridge/runs/{run}/retry/"' in body
    assert 'data-relaybridge-stop-url="/relaybridge/runs/{run}/stop/"' in body
    assert 'aria-live="polite"' in body
    match = re.search(r'<script id="([^"]+)" type="application/json">(.*?)</script>', body, re.S)
    assert match is not None
    assert f'data-relaybridge-runs="{match.group(1)}"' in body
    assert str(run.run_id) in match.group(2) and '"agent_name": "Athena"' in match.group(2)


def test_the_mention_hint_lists_the_known_agents(client_in: Client, task: Task) -> None:
    body = page(client_in, detail_url(task))
    hint = body[body.index('id="relaybridge-mention-hint"') :]
    for agent_id in ("athena", "klyve", "offline"):
        assert f"@{agent_id}" in hint
    assert 'aria-describedby="relaybridge-mention-hint"' in body

    store_directory(
        [
            {"agent_id": "athena", "name": "Athena", "description": "Summaries & plans"},
            {"agent_id": "klyve", "name": "Klyve", "description": "Numbers"},
        ]
    )
    mark_unavailable("klyve")
    hint = page(client_in, detail_url(task)).split('id="relaybridge-mention-hint"')[1]
    assert "Summaries &amp; plans" in hint and "@offline" not in hint
    klyve = hint[hint.index('data-agent-id="klyve"') :]
    assert "(unavailable)" in klyve[: klyve.index("</li>")]
    athena = hint[hint.index('data-agent-id="athena"') :]
    assert "unavailable" not in athena[: athena.index("</li>")]


def test_the_task_page_queries_do_not_grow_with_comments_or_runs(
    client_in: Client, task: Task, user: Any
) -> None:
    def queries_for_page() -> int:
        with CaptureQueriesContext(connection) as captured:
            page(client_in, detail_url(task))
        return len(captured)

    Comment.objects.create(task=task, author=user, body="@athena one")
    # An agent's reply: its thread's stored reply HTML is one query, however many.
    Comment.objects.create(task=task, agent_id="athena", body="reply")
    few = queries_for_page()
    for n in range(5):
        Comment.objects.create(task=task, author=user, body=f"@athena @klyve number {n}")
        Comment.objects.create(task=task, agent_id="athena", body=f"reply {n}")
    assert queries_for_page() == few
    # A long thread: 200 comments in all, most of them without runs.
    Comment.objects.bulk_create(
        Comment(task=task, author=user, body=f"comment {n}") for n in range(188)
    )
    assert task.comments.count() == 200
    assert queries_for_page() == few


def test_retry_and_stop_urls_follow_where_the_host_mounts_relaybridge(
    client_in: Client, task: Task, user: Any, settings: Any
) -> None:
    settings.ROOT_URLCONF = "tests.project.urls_mounted"
    comment = Comment.objects.create(task=task, author=user, body="@athena hi")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.record_error(run.run_id, ErrorCode.AGENT_NOT_FOUND, "gone")
    body = page(client_in, detail_url(task))
    assert 'data-relaybridge-retry-url="/hooks/bridge/runs/{run}/retry/"' in body
    assert 'data-relaybridge-stop-url="/hooks/bridge/runs/{run}/stop/"' in body
    assert f'action="/hooks/bridge/runs/{run.run_id}/retry/"' in body
