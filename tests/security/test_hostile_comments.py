"""Hostile comment bodies posted through the task page: bounded work, no stray runs.

Thousands of mentions start at most ``RELAYBRIDGE_MAX_MENTIONS`` runs; look-alike
letters and invisible characters never reach an agent the text does not plainly
name; a 1 MB comment is stored whole, sent to Relay trimmed to fit, and shown
escaped; agent names from Relay's discovery are shown as text wherever they appear.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.test import Client
from hypothesis import given, settings
from hypothesis import strategies as st

from project.tasks.models import Comment, Task
from relaybridge import services
from relaybridge.agents import store_directory
from relaybridge.mentions import find_mentions
from relaybridge.models import AgentRun
from relaybridge.protocol.payload import MAX_PAYLOAD_BYTES
from tests.stacks import eager_celery, use_embedded_default

pytestmark = pytest.mark.django_db

KNOWN = ["athena", "klyve", "slow", "data-bot"]
#: Letters from other scripts that look like Latin ones, and invisible characters.
CONFUSABLES = {
    "a": "\u0430\u03b1",
    "e": "\u0435\u03b5",
    "o": "\u043e\u03bf",
    "h": "\u04bb",
    "k": "\u043a\u03ba",
    "l": "\u04cf\u0399",
    "t": "\u0442\u03c4",
    "y": "\u0443",
    "n": "\u0578",
    "s": "\u0455",
    "d": "\u0501",
    "b": "\u0184",
    "v": "\u03bd",
}
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u034f", "\u180e"]


@pytest.fixture(autouse=True)
def embedded(settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    use_embedded_default(settings)
    settings.RELAYBRIDGE_AGENTS = KNOWN
    # Dispatch itself is not under test here; the runs and payloads are.
    monkeypatch.setattr(services, "queue_dispatch", lambda *args, **kwargs: None)
    with eager_celery():
        yield


def live_html(page: str, *needles: str) -> list[str]:
    """Tags (not escaped text) in ``page`` that contain any of ``needles``."""
    return [tag for tag in re.findall(r"<[^<>]*>", page) if any(n in tag for n in needles)]


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def post(client: Client, task: Task, body: str) -> Comment:
    response = client.post(f"/tasks/{task.pk}/", {"body": body})
    assert response.status_code == 302, response.content[:500]
    return Comment.objects.filter(task=task).latest("pk")


@st.composite
def disguised_mentions(draw: st.DrawFn) -> tuple[str, str]:
    """``@id`` for a known id with one letter swapped for a look-alike or one invisible
    character put somewhere inside (or right after) it."""
    agent_id = draw(st.sampled_from(KNOWN))
    if draw(st.booleans()):
        positions = [i for i, char in enumerate(agent_id) if char in CONFUSABLES]
        i = draw(st.sampled_from(positions))
        disguised = (
            agent_id[:i] + draw(st.sampled_from(CONFUSABLES[agent_id[i]])) + agent_id[i + 1 :]
        )
    else:
        i = draw(st.integers(0, len(agent_id)))
        disguised = agent_id[:i] + draw(st.sampled_from(INVISIBLE)) + agent_id[i:]
    before = draw(st.sampled_from(["", "hey ", "> ", "**", "\n\n"]))
    after = draw(st.sampled_from(["", " please", "!", ", what now?"]))
    return agent_id, f"{before}@{disguised}{after}"


@settings(max_examples=300, deadline=None)
@given(disguised_mentions())
def test_look_alikes_and_invisible_characters_never_mention_anyone(
    case: tuple[str, str],
) -> None:
    _agent_id, text = case
    assert find_mentions(text, KNOWN, 5) == [], ascii(text)


def test_thousands_of_mentions_start_at_most_the_limit(
    settings: Any, task: Task, user: Any
) -> None:
    settings.RELAYBRIDGE_MAX_MENTIONS = 3
    body = " ".join(f"@{KNOWN[n % 4]} @ghost{n}" for n in range(5000))
    comment = post(signed_in(user), task, body)
    runs = list(AgentRun.objects.filter(comment=comment).values_list("agent_id", flat=True))
    assert sorted(runs) == ["athena", "klyve", "slow"]
    # Saving the same comment again adds nobody new, whatever it names.
    comment.save()
    assert AgentRun.objects.filter(comment=comment).count() == 3


def test_a_megabyte_comment_is_stored_whole_sent_trimmed_and_shown_escaped(
    task: Task, user: Any
) -> None:
    filler = "<script>window.__pwned=1</script> **bold** [x](javascript:alert(1)) "
    body = "@athena read all of this\n\n" + filler * (1_048_576 // len(filler))
    assert len(body) >= 1_000_000
    client = signed_in(user)
    comment = post(client, task, body)
    # Stored whole (the form only trims the whitespace at either end).
    assert Comment.objects.get(pk=comment.pk).body == body.strip()
    [run] = AgentRun.objects.select_related("comment").filter(comment=comment)
    payload = services.build_payload(run)
    assert len(json.dumps(payload).encode()) <= MAX_PAYLOAD_BYTES
    assert payload["message"].startswith("@athena read all of this")
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "<script>window.__pwned" not in page
    assert page.count("&lt;script&gt;window.__pwned=1&lt;/script&gt;") >= 1000


def test_a_megabyte_agent_reply_is_saved_whole_and_rendered_shortened(
    task: Task, user: Any
) -> None:
    comment = post(signed_in(user), task, "@athena write a lot")
    run = AgentRun.objects.get(comment=comment)
    AgentRun.objects.filter(pk=run.pk).update(status=AgentRun.Status.STREAMING)
    text = "<img src=http://remote.example/p.png onerror=alert(1)> *word* " * 16_000
    reply = services.record_reply(str(run.run_id), text)
    assert reply is not None and Comment.objects.get(pk=reply.pk).body == text
    page = signed_in(user).get(f"/tasks/{task.pk}/").content.decode()
    assert "shortened for display" in page
    assert not live_html(page, "img", "onerror", "remote.example")
    assert "&lt;img src=http://remote.example/p.png onerror=alert(1)&gt;" in page


def test_agent_names_from_discovery_are_text_on_the_page_and_in_the_admin(
    task: Task, user: Any, settings: Any
) -> None:
    hostile = "<img src=x onerror=alert(1)>Athena"
    store_directory(
        [
            {"agent_id": "athena", "name": hostile, "description": "<script>alert(2)</script>"},
            {"agent_id": "\u0430thena", "name": "Fake <b>Athena</b>", "description": ""},
        ]
    )
    Comment.objects.create(task=task, agent_id="athena", body="Hello from the agent.")
    client = signed_in(user)
    page = client.get(f"/tasks/{task.pk}/").content.decode()
    assert "<img src=x" not in page and "<script>alert(2)" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;Athena" in page
    assert "<b>Athena</b>" not in page
    # The look-alike id from discovery can never be mentioned.
    assert find_mentions("@\u0430thena hi", ["\u0430thena"], 5) == []
    user.is_staff = user.is_superuser = True
    user.save()
    admin_pages = [
        "/admin/relaybridge/agentrun/",
        "/admin/relaybridge/agentrun/agents/",
        "/admin/tasks/comment/",
    ]
    for path in admin_pages:
        admin = client.get(path)
        assert admin.status_code == 200, path
        text = admin.content.decode()
        assert "<img src=x" not in text and "<script>alert(2)" not in text, path
        if path.endswith("/agents/"):
            assert "&lt;img src=x onerror=alert(1)&gt;Athena" in text, "names not shown"
