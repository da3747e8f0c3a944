"""The comment box's "will call" preview: the same parser and limit as saving a comment."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from relaybridge.agents import get_directory, mark_unavailable, store_directory

pytestmark = pytest.mark.django_db

URL = "/relaybridge/mentions/preview/"


@pytest.fixture
def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def preview(client: Client, text: str) -> dict[str, Any]:
    response = client.post(URL, {"text": text}, HTTP_ACCEPT="application/json")
    assert response.status_code == 200, response.content
    answer: dict[str, Any] = response.json()
    return answer


def test_the_url_is_named() -> None:
    assert reverse("relaybridge:mention-preview") == URL


def test_it_names_the_agents_a_comment_will_call_in_order(signed_in: Client) -> None:
    answer = preview(signed_in, "@klyve and @Athena, then @athena again; @nobody")
    assert [agent["agent_id"] for agent in answer["agents"]] == ["klyve", "athena"]
    assert answer["over_limit"] is False


def test_what_is_not_a_mention_is_not_previewed(signed_in: Client) -> None:
    cyrillic_a = "\u0430"
    text = f"`@athena` mail bob@athena.io, see https://x.io/@athena, \\@athena, @{cyrillic_a}thena"
    assert preview(signed_in, text)["agents"] == []
    assert preview(signed_in, "")["agents"] == []


def test_names_and_unavailability_come_from_discovery(signed_in: Client) -> None:
    store_directory([{"agent_id": "athena", "name": "Athena"}, {"agent_id": "klyve"}])
    mark_unavailable("klyve")
    answer = preview(signed_in, "@athena @klyve @slow")
    # @slow is in the allow-list but not in Relay's discovery: it will not be called.
    assert answer["agents"] == [
        {"agent_id": "athena", "name": "Athena", "unavailable": False},
        {"agent_id": "klyve", "name": "klyve", "unavailable": True},
    ]
    # The page shows the server's sentence, in the page's language.
    assert answer["message"] == "Posting will call Athena and klyve (unavailable)."


def test_mentions_past_the_limit_are_flagged(signed_in: Client, settings: Any) -> None:
    settings.RELAYBRIDGE_MAX_MENTIONS = 2
    answer = preview(signed_in, "@athena @klyve @slow")
    assert [agent["agent_id"] for agent in answer["agents"]] == ["athena", "klyve"]
    assert answer["limit"] == 2 and answer["over_limit"] is True
    assert answer["message"].endswith("Only the first 2 mentioned agents are called.")
    exact = preview(signed_in, "@athena @klyve")
    assert exact["over_limit"] is False


def test_it_needs_a_signed_in_post_with_a_csrf_token(user: Any) -> None:
    anonymous = Client().post(URL, {"text": "@athena"})
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post(URL, {"text": "@athena"}).status_code == 403
    signed = Client()
    signed.force_login(user)
    assert signed.get(URL).status_code == 405


def test_a_discovered_name_is_shown_with_its_id_and_without_disguise(signed_in: Client) -> None:
    store_directory(
        [
            {"agent_id": "athena", "name": "Athena"},
            # Right-to-left override, zero-width space, isolate, a line break, a token.
            {
                "agent_id": "klyve",
                "name": "\u202eAthena\u200b\u2066\nrla_x_1",
                "description": "d\u200f",
            },
            {"agent_id": "kly\u202eve", "name": "Hidden"},
        ]
    )
    answer = preview(signed_in, "@athena @klyve")
    klyve = {"agent_id": "klyve", "name": "Athena [redacted]", "unavailable": False}
    assert answer["agents"][1] == klyve
    assert answer["message"] == "Posting will call Athena and Athena [redacted] (@klyve)."
    directory = get_directory()
    assert directory is not None
    # An id that does not show as itself is not listed at all.
    assert [info["agent_id"] for info in directory["agents"]] == ["athena", "klyve"]
    assert directory["agents"][1]["description"] == "d"
