"""Rendering is paid once: a saved reply's HTML is reused by every view, and the preview is cheap.

An agent's reply is rendered when it is saved and its sanitized HTML kept on its
run; the task page and the ``run.reply`` push reuse that copy, and render again
only when it is missing (a row saved before copies were kept) or out of date
(the comment was edited). The renderer's calls are counted by wrapping the real
parser of :mod:`relaybridge.rendering`, never by timing.

The mention preview answers at most ``RELAYBRIDGE_PREVIEW_RATE`` requests per user,
counted in the Django cache (429 with ``Retry-After`` beyond), and reads a bounded
length of the draft. The cards host (django-contrib-comments) runs the same page
checks under its own settings, in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.test import Client
from django.urls import reverse

from project.tasks.models import Comment, Task
from relaybridge import rendering, services, streams
from relaybridge.models import AgentRun
from tests.deployment.processes import ROOT
from tests.hosts.conftest import CARDS_SETTINGS
from tests.stacks import eager_celery, use_embedded_default

pytestmark = pytest.mark.django_db

PREVIEW_URL = "/relaybridge/mentions/preview/"
REPLY = "## Plan\n\nShip **the status page**, then [the notes](https://example.com/notes)."
CARDS_TESTS = "tests/hosts/cards/tests/test_render_once.py"


@pytest.fixture(autouse=True)
def embedded_default(settings: Any) -> Iterator[None]:
    use_embedded_default(settings)
    settings.RELAYBRIDGE_AGENTS = ["athena", "klyve"]
    with eager_celery():
        yield


class Parses:
    """Counts the rendering parser's calls, each made by the real parser."""

    def __init__(self) -> None:
        self.calls = 0

    def wrap(self, real: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            return real(*args, **kwargs)

        return counted


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Parses:
    counter = Parses()
    # The instance's own parse: every rendering of agent Markdown goes through it.
    monkeypatch.setattr(rendering._md, "parse", counter.wrap(rendering._md.parse))
    return counter


@pytest.fixture
def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def page(client: Client, task: Task) -> str:
    response = client.get(reverse("tasks:task_detail", args=[task.pk]))
    assert response.status_code == 200
    return response.content.decode()


def replied(task: Task, user: Any, text: str = REPLY) -> tuple[AgentRun, Any]:
    mention = Comment.objects.create(task=task, author=user, body="@athena plan this")
    run = AgentRun.objects.get(comment=mention)
    reply = services.record_reply(run.run_id, text)
    assert reply is not None
    run.refresh_from_db()
    return run, reply


def test_a_reply_is_rendered_once_when_saved_and_never_by_page_views(
    signed_in: Client, task: Task, user: Any, parses: Parses
) -> None:
    run, _reply = replied(task, user)
    assert parses.calls == 1  # when the reply was saved
    assert "<strong>the status page</strong>" in run.reply_html
    assert run.reply_digest == rendering.render_digest(REPLY)

    for _ in range(3):
        html = page(signed_in, task)
        assert "<h2>Plan</h2>" in html and "<strong>the status page</strong>" in html
        assert 'rel="nofollow noopener noreferrer"' in html
    assert parses.calls == 1


def test_the_run_reply_push_reuses_the_stored_copy(task: Task, user: Any, parses: Parses) -> None:
    run, reply = replied(task, user)
    before = parses.calls
    event = streams.reply_event_for(run, reply)
    assert parses.calls == before
    assert event["html"] == run.reply_html
    assert run.reply_html in event["fragment"]


def test_an_edited_reply_is_rendered_again_once_and_the_copy_replaced(
    signed_in: Client, task: Task, user: Any, parses: Parses
) -> None:
    run, reply = replied(task, user)
    Comment.objects.filter(pk=reply.pk).update(body="Now *edited*.")
    before = parses.calls

    assert "<em>edited</em>" in page(signed_in, task)
    assert parses.calls == before + 1
    run.refresh_from_db()
    assert "<em>edited</em>" in run.reply_html
    assert run.reply_digest == rendering.render_digest("Now *edited*.")
    assert "<em>edited</em>" in page(signed_in, task)
    assert parses.calls == before + 1


def test_a_reply_saved_before_copies_were_kept_is_rendered_on_its_first_view_only(
    signed_in: Client, task: Task, user: Any, parses: Parses
) -> None:
    run, _reply = replied(task, user)
    AgentRun.objects.filter(pk=run.pk).update(reply_html="", reply_digest="")
    before = parses.calls

    assert "<strong>the status page</strong>" in page(signed_in, task)
    assert parses.calls == before + 1
    run.refresh_from_db()
    assert run.reply_digest == rendering.render_digest(REPLY)
    page(signed_in, task)
    assert parses.calls == before + 1


def test_a_changed_rendering_bound_makes_the_copies_out_of_date(
    signed_in: Client, task: Task, user: Any, parses: Parses, settings: Any
) -> None:
    replied(task, user)
    before = parses.calls
    settings.RELAYBRIDGE_RENDER_MAX_MARKUP = 3  # the reply has more: now plain text
    html = page(signed_in, task)
    assert "## Plan" in html and "<strong>" not in html
    assert parses.calls == before  # the plain-text fallback never parses


def test_a_stored_copy_is_never_trusted_for_another_text(
    signed_in: Client, task: Task, user: Any
) -> None:
    run, _reply = replied(task, user)
    # A copy whose digest does not match the comment's text is not shown.
    AgentRun.objects.filter(pk=run.pk).update(reply_html="<p>forged</p>", reply_digest="0" * 64)
    html = page(signed_in, task)
    assert "forged" not in html and "<strong>the status page</strong>" in html


# -- the mention preview -------------------------------------------------------------------


def ask(client: Client, text: str = "@athena hi") -> Any:
    return client.post(PREVIEW_URL, {"text": text}, HTTP_ACCEPT="application/json")


def test_the_preview_answers_429_with_retry_after_over_the_rate(
    signed_in: Client, settings: Any, django_user_model: Any
) -> None:
    settings.RELAYBRIDGE_PREVIEW_RATE = "3/min"
    for _ in range(3):
        assert ask(signed_in).status_code == 200
    refused = ask(signed_in)
    assert refused.status_code == 429
    wait = int(refused["Retry-After"])
    assert 1 <= wait <= 60
    body = refused.json()
    assert body["error"] == "rate limited" and body["retry_after"] == wait
    assert "agents" not in body

    # The limit is per user: someone else is still answered.
    other = Client()
    other.force_login(django_user_model.objects.create_user("bob", password="pw"))
    assert ask(other).status_code == 200


def test_the_preview_rate_is_counted_in_the_shared_cache(
    signed_in: Client, settings: Any, redis_url: str, user: Any
) -> None:
    prefix = f"relaybridge-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        }
    }
    settings.RELAYBRIDGE_PREVIEW_RATE = "2/hour"
    assert ask(signed_in).status_code == 200
    assert ask(signed_in).status_code == 200
    # The count lives in Redis, where every process serving the site reads it.
    client = redis.Redis.from_url(redis_url)
    try:
        keys = client.keys(f"{prefix}:*relaybridge:rate:mention-preview:{user.pk}:*")
        assert len(keys) == 1
        assert int(client.get(keys[0]) or 0) == 2
    finally:
        client.close()
    assert ask(signed_in).status_code == 429


def test_the_preview_reads_a_bounded_length_of_the_draft(signed_in: Client, settings: Any) -> None:
    settings.RELAYBRIDGE_PREVIEW_MAX_CHARS = 1_000
    early = ask(signed_in, "@athena " + "x" * 2_000).json()
    assert [agent["agent_id"] for agent in early["agents"]] == ["athena"]
    assert early["truncated"] is True
    late = ask(signed_in, "x " * 1_000 + "@klyve").json()
    assert late["agents"] == [] and late["truncated"] is True
    assert ask(signed_in, "@klyve").json()["truncated"] is False


# -- the cards host ------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_the_cards_host_page_reuses_stored_replies() -> None:
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "--ds",
            CARDS_SETTINGS,
            CARDS_TESTS,
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
    )
    summary = done.stdout.strip().splitlines()[-1:] or ["(no output)"]
    assert done.returncode == 0, f"{summary[0]}\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}"
    assert " passed" in summary[0] and "skipped" not in summary[0], summary[0]
