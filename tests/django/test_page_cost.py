"""What a page of comments costs relaybridge: settings, agent names, URLs and runs read once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.signals import setting_changed
from django.db import connection
from django.template import Context, RequestContext, Template, engines
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext, override_settings

from project.tasks.models import Comment, Task
from relaybridge import agents, feedback, fragments, services
from relaybridge.conf import DEFAULTS, relay_settings
from relaybridge.models import AgentRun

pytestmark = pytest.mark.django_db

# The example project's task page, as far as relaybridge draws it.
PAGE = Template(
    "{% load relaybridge %}{% relaybridge_stream task %}"
    "{% for comment in comments %}"
    "{% if comment.agent_id %}{% relaybridge_reply comment %}"
    "{% else %}{% relaybridge_runs comment %}{% endif %}"
    "{% endfor %}{% relaybridge_mention_hint thread=task %}"
)


def answered(task: Task, author: Any, text: str = "@athena hello") -> AgentRun:
    """A person's mention, answered: the run is ``replied`` with its reply comment."""
    comment = Comment.objects.create(task=task, author=author, body=text)
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, f"evt_{run.pk}")
    assert services.record_reply(run.run_id, "Hi **there**.", {}) is not None
    run.refresh_from_db()
    return run


def failed(task: Task, author: Any, text: str) -> None:
    """A person's mentions, each run failed (a Retry button under the comment)."""
    comment = Comment.objects.create(task=task, author=author, body=text)
    AgentRun.objects.filter(comment=comment).update(status=AgentRun.Status.FAILED)


def render_page(task: Task, user: Any, rf: RequestFactory, comments: Any = None) -> str:
    request = rf.get("/")
    request.user = user
    if comments is None:
        comments = list(Comment.objects.filter(task=task).order_by("pk"))
    return PAGE.render(RequestContext(request, {"task": task, "comments": comments}))


# --- settings -----------------------------------------------------------------------------


def test_a_kept_setting_is_read_again_when_setting_changed_names_it(settings: Any) -> None:
    settings.RELAYBRIDGE_MAX_MENTIONS = 3
    assert relay_settings.MAX_MENTIONS == 3
    # Changed in place, on the same settings object, and then announced as Django does.
    django_settings.RELAYBRIDGE_MAX_MENTIONS = 4
    assert relay_settings.MAX_MENTIONS == 3  # kept: not looked up on every access
    setting_changed.send(sender=None, setting="RELAYBRIDGE_MAX_MENTIONS", value=4, enter=True)
    assert relay_settings.MAX_MENTIONS == 4


def test_override_settings_and_a_deleted_setting_take_effect(settings: Any) -> None:
    settings.RELAYBRIDGE_MAX_MENTIONS = 3
    assert relay_settings.MAX_MENTIONS == 3
    with override_settings(RELAYBRIDGE_MAX_MENTIONS=2):
        assert relay_settings.MAX_MENTIONS == 2
    assert relay_settings.MAX_MENTIONS == 3
    # pytest-django deletes on a new settings object, without a setting_changed.
    del settings.RELAYBRIDGE_MAX_MENTIONS
    assert DEFAULTS["MAX_MENTIONS"] == relay_settings.MAX_MENTIONS


# --- agent names and URLs -----------------------------------------------------------------


def test_a_page_reads_the_agent_directory_and_reverses_each_url_once(
    task: Task, user: Any, rf: RequestFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    agents.store_directory([{"agent_id": "athena", "name": "Athena"}, {"agent_id": "klyve"}])
    answered(task, user)
    for n in range(3):
        failed(task, user, f"@athena @klyve question {n}")
    reads: list[str] = []
    reversed_: list[str] = []
    read_directory, url_template = agents._read_directory, fragments._run_url_template

    def counted_read() -> Any:
        reads.append("")
        return read_directory()

    def counted_reverse(action: str) -> str:
        reversed_.append(action)
        return url_template(action)

    monkeypatch.setattr(agents, "_read_directory", counted_read)
    monkeypatch.setattr(fragments, "_run_url_template", counted_reverse)
    html = render_page(task, user, rf)
    assert html.count('data-relaybridge-run-action="retry"') == 6
    assert reads == [""]
    assert sorted(reversed_) == ["regenerate", "retry", "stop"]
    # The next page (another request) reads the directory as it is then.
    agents.mark_unavailable("klyve")
    reads.clear()
    assert "(unavailable)" in render_page(task, user, rf)
    assert reads == [""]


def test_a_page_drawn_without_a_request_reads_the_directory_per_render(
    task: Task, user: Any
) -> None:
    agents.store_directory([{"agent_id": "athena", "name": "Athena"}])
    hint = Template("{% load relaybridge %}{% relaybridge_mention_hint %}")
    assert "@athena" in hint.render(Context({}))
    agents.store_directory([{"agent_id": "klyve", "name": "Klyve"}])
    assert "@athena" not in hint.render(Context({})) and "@klyve" in hint.render(Context({}))
    # Outside a page every read is fresh.
    assert agents.agent_name("klyve") == "Klyve"


# --- the thread's runs --------------------------------------------------------------------


def test_replies_and_their_votes_come_from_the_page_query_for_the_runs(
    task: Task, user: Any, rf: RequestFactory
) -> None:
    run = answered(task, user)
    failed(task, user, "@klyve are you there?")
    comments = list(Comment.objects.filter(task=task).order_by("pk"))
    render_page(task, user, rf, comments)  # stores the replies' HTML, as a first visit does
    with CaptureQueriesContext(connection) as captured:
        html = render_page(task, user, rf, comments)
    # The thread's runs (their visible ones, replies' HTML and replied runs) and the
    # votes' counts: two queries (they were four).
    assert len(captured) == 2, [query["sql"] for query in captured]
    assert "Hi <strong>there</strong>." in html
    assert f'data-relaybridge-feedback="{run.run_id}"' in html


def test_a_reply_whose_question_was_deleted_keeps_its_stored_html_and_votes(
    task: Task, user: Any, rf: RequestFactory
) -> None:
    run = answered(task, user)
    feedback.record_vote(run, user, "up")
    # A stored copy that differs from a fresh render: shown only if it was found.
    AgentRun.objects.filter(pk=run.pk).update(reply_html="<p>stored copy</p>")
    assert run.comment is not None
    run.comment.delete()
    html = render_page(task, user, rf)
    assert "<p>stored copy</p>" in html
    assert re.search(r'data-relaybridge-feedback-count="up">1<', html)


# --- the stream area's runs ---------------------------------------------------------------


def test_an_overridden_stream_template_still_gets_the_runs(
    task: Task, user: Any, rf: RequestFactory, settings: Any, tmp_path: Path
) -> None:
    failed(task, user, "@athena hello")
    stock = render_page(task, user, rf)
    override = tmp_path / "relaybridge" / "stream.html"
    override.parent.mkdir()
    override.write_text("{{ runs|json_script:json_id }}")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    page = engines["django"].from_string("{% load relaybridge %}{% relaybridge_stream task %}")
    request = rf.get("/")
    request.user = user
    drawn = page.render({"task": task}, request)
    assert drawn.startswith('<script id="relaybridge-tasks-task-')
    assert drawn in stock
