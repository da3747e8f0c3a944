"""The run tags of a page of comments cost a fixed number of queries, however many comments."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.template import Context, RequestContext, Template, engines
from django.template.loader import get_template
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from project.tasks.models import Comment, Task
from relaybridge.adapters import get_adapter
from relaybridge.models import AgentRun

pytestmark = pytest.mark.django_db

PAGE = Template(
    "{% load relaybridge %}{% relaybridge_stream task %}"
    "{% for comment in comments %}{% relaybridge_runs comment %}{% endfor %}"
)
STREAM_ONLY = Template("{% load relaybridge %}{% relaybridge_stream task %}")
# A comment list drawn by its own template, as django-contrib-comments' tags do.
COMMENT_LIST = Template(
    "{% load relaybridge %}{% for comment in comments %}{% relaybridge_runs comment %}{% endfor %}"
)


def thread_with(count: int, user: Any) -> tuple[Task, list[Comment]]:
    """A task with ``count`` comments, each with a failed run (shown under it)."""
    task = Task.objects.create(title=f"{count} comments")
    Comment.objects.bulk_create(
        Comment(task=task, author=user, body=f"comment {n}") for n in range(count)
    )
    adapter = get_adapter()
    AgentRun.objects.bulk_create(
        AgentRun(
            comment=comment,
            agent_id="athena",
            thread_id=adapter.thread_id(task),
            thread_key=adapter.thread_key(task),
            status=AgentRun.Status.FAILED,
            error_message="Athena is offline",
        )
        for comment in Comment.objects.filter(task=task)
    )
    # Loaded the way a host might, without the thread cached on each comment.
    return task, list(Comment.objects.filter(task_id=task.pk).order_by("pk"))


def queries_to_render(render: Any) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as captured:
        html = render()
    return len(captured), html


@pytest.mark.parametrize("count", [5, 200])
def test_one_query_for_the_runs_of_a_page(count: int, user: Any) -> None:
    task, comments = thread_with(count, user)
    queries, html = queries_to_render(
        lambda: PAGE.render(Context({"task": task, "comments": comments}))
    )
    assert html.count('data-status="failed"') == count
    assert queries == 1


@pytest.mark.parametrize("count", [5, 200])
def test_one_query_when_the_comments_are_drawn_by_another_template(
    count: int, user: Any, rf: RequestFactory
) -> None:
    task, comments = thread_with(count, user)
    request = rf.get("/")

    def render() -> str:
        # A RequestContext (no request context processor needed) and a plain one.
        stream = STREAM_ONLY.render(RequestContext(request, {"task": task}))
        listing = COMMENT_LIST.render(Context({"comments": comments, "request": request}))
        return stream + listing

    queries, html = queries_to_render(render)
    assert html.count('data-status="failed"') == count
    assert queries == 1


def test_each_comment_gets_only_its_own_runs(user: Any) -> None:
    task, comments = thread_with(3, user)
    html = PAGE.render(Context({"task": task, "comments": comments}))
    for comment in comments:
        run = AgentRun.objects.get(comment=comment)
        after = html.split(f'data-relaybridge-comment-runs="{comment.pk}"')[1]
        block = after.split("data-relaybridge-comment-runs=")[0]
        assert f'data-relaybridge-run="{run.run_id}"' in block
        assert block.count("data-relaybridge-run=") == 1


def test_a_comment_without_runs_gets_what_the_runs_template_renders(user: Any) -> None:
    task = Task.objects.create(title="quiet")
    comment = Comment.objects.create(task=task, author=user, body="no mentions here")
    drawn = Template("{% load relaybridge %}{% relaybridge_runs comment %}").render(
        Context({"comment": comment})
    )
    # The package's template itself, rendered as an inclusion tag would.
    rendered = get_template("relaybridge/runs.html").render(
        {"comment_id": str(comment.pk), "runs": [], "csrf_token": None}
    )
    assert drawn == rendered
    assert f'data-relaybridge-comment-runs="{comment.pk}"' in drawn


def test_an_overridden_runs_template_is_rendered_for_every_comment(
    user: Any, settings: Any, tmp_path: Path
) -> None:
    override = tmp_path / "relaybridge" / "runs.html"
    override.parent.mkdir()
    override.write_text(
        "<ul data-relaybridge-comment-runs='{{ comment_id }}'>{{ runs|length }}</ul>"
    )
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path]}]
    task, comments = thread_with(1, user)
    quiet = Comment.objects.create(task=task, author=user, body="no mentions here")
    page = engines["django"].from_string(
        "{% load relaybridge %}"
        "{% for comment in comments %}{% relaybridge_runs comment %}{% endfor %}"
    )
    html = page.render({"comments": [*comments, quiet]})
    assert html == (
        f"<ul data-relaybridge-comment-runs='{comments[0].pk}'>1</ul>"
        f"<ul data-relaybridge-comment-runs='{quiet.pk}'>0</ul>"
    )
