"""The page contract: server-rendered run and reply fragments, data attributes, translations."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import translation

from project.tasks.models import Comment, Task
from relaybridge import services, streams
from relaybridge.models import AgentRun

from .test_pages import detail_url, page

pytestmark = pytest.mark.django_db

TEST_LOCALE = Path(__file__).resolve().parent.parent / "locale"


def test_comments_and_the_list_carry_the_documented_attributes(
    client_in: Client, task: Task, user: Any
) -> None:
    person = Comment.objects.create(task=task, author=user, body="@athena hi")
    agent = Comment.objects.create(task=task, agent_id="athena", body="Hello")
    body = page(client_in, detail_url(task))
    assert f'data-relaybridge-comment-id="{person.pk}"' in body
    assert f'data-relaybridge-comment-id="{agent.pk}"' in body
    assert re.search(r"<ol [^>]*data-relaybridge-comment-list", body)
    assert f'data-relaybridge-comment-runs="{person.pk}"' in body
    run = AgentRun.objects.get(comment=person)
    placeholder = body[body.index(f'data-relaybridge-run="{run.run_id}"') :]
    assert "data-relaybridge-run-status" in placeholder
    assert "data-relaybridge-run-text" in placeholder


def test_a_reply_inserted_live_is_the_reply_the_page_shows(
    client_in: Client, task: Task, user: Any
) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@athena hello")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, "evt_1")
    saved = services.record_reply_and_run(run.run_id, "Hello **there**", {})
    assert saved is not None
    run, reply = saved
    message = streams.reply_event_for(run, reply)
    assert message["type"] == "run.reply" and message["comment_id"] == str(reply.pk)
    assert message["html"].strip() == "<p>Hello <strong>there</strong></p>"
    assert message["status_text"] == "Athena replied."
    fragment = message["fragment"].strip()
    assert f'data-relaybridge-comment-id="{reply.pk}"' in fragment
    # The page renders the same template with the same context: the same markup,
    # but for the CSRF token of its vote form (pushed to every page without one:
    # the script fills it in).
    body = page(client_in, detail_url(task))
    assert 'name="csrfmiddlewaretoken" value=""' in fragment
    # The same but for the CSRF token of its forms (Regenerate, feedback), which the
    # script fills in from the page.
    body = re.sub(r'(name="csrfmiddlewaretoken" value=")[^"]*"', r'\1"', body)
    assert 'action="/relaybridge/runs/' in fragment and "/regenerate/" in fragment
    assert fragment in body


def test_a_run_fragment_has_no_ones_csrf_token_but_the_page_has(
    client_in: Client, task: Task, user: Any
) -> None:
    comment = Comment.objects.create(task=task, author=user, body="@athena go")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.record_error(run.run_id, "AGENT_NOT_FOUND", "Athena does not exist")
    run.refresh_from_db()
    # Pushed to every page: the buttons travel in control_html (see for_viewer).
    fragment = streams.status_event(run).get("control_html", "")
    assert 'name="csrfmiddlewaretoken" value=""' in fragment
    assert "data-relaybridge-run-action" in fragment
    body = page(client_in, detail_url(task))
    assert re.search(r'name="csrfmiddlewaretoken" value="[^"]+"', body)


def test_the_script_gets_its_words_from_the_server(client_in: Client, task: Task) -> None:
    body = page(client_in, detail_url(task))
    match = re.search(r'data-relaybridge-texts="([^"]+)"', body)
    assert match is not None
    data = re.search(rf'<script id="{match.group(1)}" type="application/json">(.*?)</script>', body)
    assert data is not None
    texts = json.loads(data.group(1))
    assert texts["retrying_in"] == "retrying in {delay}"
    assert texts["minutes_seconds"] == "{m} min {s} s"


def test_the_task_page_speaks_a_second_language(
    client_in: Client, task: Task, user: Any, settings: Any
) -> None:
    settings.LOCALE_PATHS = [str(TEST_LOCALE)]
    settings.LANGUAGES = [("en", "English"), ("fr", "Français")]
    Comment.objects.create(task=task, author=user, body="@athena hi")
    Comment.objects.create(task=task, agent_id="athena", body="Hello")
    with translation.override("fr"):
        body = page(client_in, detail_url(task))
        run = AgentRun.objects.get(comment__agent_id="")
        state = streams.run_state(run)
    assert "Athena réfléchit…" in body
    assert "Généré par IA" in body
    assert "Mentionnez un agent avec <code>@</code> pour lui demander :" in body
    assert "nouvel essai dans {delay}" in body  # the script's countdown words
    assert state["status_text"] == "Athena réfléchit…"
    assert state["writing_text"] == "Athena écrit…"
    assert "Athena réfléchit…" in state["html"]


def test_a_reason_the_worker_recorded_is_shown_in_the_pages_language(
    task: Task, user: Any, settings: Any
) -> None:
    settings.LOCALE_PATHS = [str(TEST_LOCALE)]
    settings.LANGUAGES = [("en", "English"), ("fr", "Français")]
    comment = Comment.objects.create(task=task, author=user, body="@athena hi")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    # As the relay worker records it: the policy's English sentence and the wait.
    services.record_error(
        run.run_id, "AGENT_OFFLINE", "Athena is offline — retrying in 4 s", 4, schedule=False
    )
    run.refresh_from_db()
    assert re.fullmatch(
        r"Athena is offline — retrying in [34] s", streams.run_state(run)["status_text"]
    )
    with translation.override("fr"):
        state = streams.run_state(run)
    assert re.fullmatch(r"Athena est hors ligne — nouvel essai dans [34] s", state["status_text"])
    assert state["status_template"] == "Athena est hors ligne — {countdown}"
    # A message of the host's or Relay's own is shown as recorded.
    services.record_error(run.run_id, "AGENT_OFFLINE", "Down for maintenance", 4, schedule=False)
    run.refresh_from_db()
    with translation.override("fr"):
        assert streams.run_state(run)["status_template"] == "Down for maintenance — {countdown}"


def test_a_broken_reply_override_leaves_the_page_to_refresh_and_says_so(
    task: Task, user: Any, settings: Any, tmp_path: Path, caplog: Any
) -> None:
    override = tmp_path / "relaybridge"
    override.mkdir()
    (override / "reply.html").write_text("{% url 'no-such-view' %}")
    settings.TEMPLATES = [
        {**settings.TEMPLATES[0], "DIRS": [str(tmp_path), *settings.TEMPLATES[0]["DIRS"]]}
    ]
    comment = Comment.objects.create(task=task, author=user, body="@athena hello")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, "evt_1")
    saved = services.record_reply_and_run(run.run_id, "Hello", {})
    assert saved is not None
    message = streams.reply_event_for(*saved)
    # The reply still goes out (the page fetches its comment list for the markup).
    assert message["fragment"] == "" and message["html"].strip() == "<p>Hello</p>"
    assert "could not render render_reply" in caplog.text


def test_the_task_page_carries_a_runs_text_once(client_in: Client, task: Task, user: Any) -> None:
    """In the run's markup (where the script reads it), not again in the runs' JSON."""
    comment = Comment.objects.create(task=task, author=user, body="@athena go")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, "evt_once")
    text = "Partial answer, kept once " * 3
    services.record_error(run.run_id, "AGENT_ERROR", "broke", partial_text=text)
    body = page(client_in, detail_url(task))
    assert body.count("Partial answer, kept once") == 3
    placeholder = body[body.index(f'data-relaybridge-run="{run.run_id}"') :]
    assert text.strip() in placeholder[: placeholder.index("</div>")]
    # The run's message carries its text once too: in ``text``, not in ``html``.
    run.refresh_from_db()
    state = streams.status_event(run)
    assert state["text"] == text and "Partial answer" not in state["html"]


@pytest.mark.parametrize(("name", "shows_id"), [("Klyve", True), ("Athena", False)])
def test_a_reply_header_shows_the_id_beside_a_name_that_is_not_it(
    task: Task, user: Any, name: str, shows_id: bool
) -> None:
    from relaybridge.agents import store_directory

    store_directory([{"agent_id": "athena", "name": name}])
    mention = Comment.objects.create(task=task, author=user, body="@athena hello")
    saved = services.record_reply_and_run(AgentRun.objects.get(comment=mention).run_id, "Hello")
    assert saved is not None
    message = streams.reply_event_for(*saved)
    header = message["fragment"][: message["fragment"].index("</header>")]
    assert f">{name}</strong>" in header
    assert ('<code class="comment__agent-id">@athena</code>' in header) is shows_id
