"""The cards host (django-contrib-comments) in a real Chromium on a production-shaped stack.

The same processes as ``test_deployment.py`` -- Daphne, Celery, the relay worker,
the Relay emulator, Redis, PostgreSQL -- started by the same harness on the cards
host's settings. The card page renders comments in django_comments' markup
(``id="c<pk>"``) with ``data-relaybridge-comment-id``, posts through
django_comments' own view, and overrides ``relaybridge/reply.html``: a reply
inserted live must be that markup, exactly once, also after the next comment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.deployment.harness import Deployment
from tests.deployment.hosts import CARDS, Host
from tests.deployment.waiting import wait_until

from .browser import (
    ask_slow_then_stop_in_the_second_tab,
    chromium,
    log_in,
    new_page,
    open_thread_page,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

RUN = "[data-relaybridge-run]"
BOX = "#comment-form textarea[name=comment]"
POST = "#comment-form button[type=submit]"
COMMENT = "#comments [data-relaybridge-comment-id]"


def agent_reply(agent_id: str) -> str:
    return f"{COMMENT}.comment--agent[data-agent={agent_id}]"


@pytest.fixture
def deployment_host() -> Host:
    return CARDS


@pytest.fixture
def site(deployment: Deployment) -> str:
    """Every process started, the cards seeded, the relay worker connected."""
    return deployment.start_site()


@pytest.fixture
def card_id(site: str, deployment: Deployment) -> int:
    return int(deployment.query("SELECT id FROM cards_card ORDER BY id LIMIT 1")[0][0])


@pytest.fixture
def tabs(site: str, card_id: int) -> Iterator[tuple[Any, Any, list[str]]]:
    """Two tabs of one signed-in browser on the card, and their JavaScript errors."""
    with chromium() as browser:
        context = browser.new_context()
        errors: list[str] = []
        first, second = new_page(context, errors), new_page(context, errors)
        log_in(first, site)
        for page in (first, second):
            open_thread_page(page, f"{site}/cards/{card_id}/")
        yield first, second, errors
        assert errors == [], f"JavaScript errors: {errors}"


def card_comments(deployment: Deployment, card_id: int) -> list[tuple[Any, ...]]:
    """``(id, user_id, user_name, comment)`` of the card's comments, oldest first."""
    return deployment.query(
        "SELECT c.id, c.user_id, c.user_name, c.comment FROM django_comments c"
        " JOIN django_content_type t ON t.id = c.content_type_id"
        " WHERE t.app_label = 'cards' AND t.model = 'card' AND c.object_pk = %s"
        " ORDER BY c.submit_date, c.id",
        str(card_id),
    )


def test_a_mention_streams_to_both_tabs_and_its_reply_is_shown_once(
    deployment: Deployment, card_id: int, tabs: tuple[Any, Any, list[str]]
) -> None:
    first, second, _ = tabs
    first.fill(BOX, "@athena summarize this card")
    first.locator("#relaybridge-mention-hint-preview").wait_for(state="visible")
    first.click(POST)

    reply = agent_reply("athena")
    for page in (first, second):
        page.wait_for_selector(reply)
    for name, page in (("first", first), ("second", second)):
        record: dict[str, Any] = page.evaluate("window.__e2e")
        assert record is not None, f"the {name} tab reloaded"
        assert record["placeholder"], f"the {name} tab showed no placeholder"
        lengths = record["lengths"]
        assert len(set(lengths)) >= 3, f"the {name} tab did not see the text grow: {lengths}"
        assert lengths == sorted(lengths), f"the {name} tab saw the text shrink: {lengths}"
        assert page.query_selector(RUN) is None, f"the {name} tab kept the placeholder"

    # Saved once, as a django_comments comment by the agent; quoting "@athena" in
    # it called nobody.
    _, mention, saved = card_comments(deployment, card_id)
    assert mention[1] is not None and mention[3] == "@athena summarize this card"
    assert saved[1] is None and saved[2] == "Athena"
    assert 'asked: "@athena summarize this card"' in saved[3]
    ((run_count, reply_id),) = deployment.query(
        "SELECT count(*), max(reply_comment_id) FROM relaybridge_agentrun"
    )
    assert (run_count, reply_id) == (1, saved[0])
    for page in (first, second):
        shown = page.locator(reply)
        assert shown.count() == 1
        assert shown.get_attribute("id") == f"c{saved[0]}"
        assert shown.get_attribute("data-relaybridge-comment-id") == str(saved[0])
        assert "Summary of" in shown.locator(".comment__body").inner_text()
        assert shown.locator(".comment__author").inner_text() == "Athena"

    # The next comment swaps the list in from the server: the reply stays single.
    first.fill(BOX, "Thanks!")
    first.click(POST)
    first.wait_for_selector(f"{COMMENT}:has-text('Thanks!')")
    assert first.locator(reply).count() == 1, "the reply was shown twice"
    assert first.locator(COMMENT).count() == 4
    assert len(card_comments(deployment, card_id)) == 4

    second.reload()
    second.wait_for_selector(reply)
    assert second.locator(reply).count() == 1
    assert second.locator(COMMENT).count() == 4


def test_stop_in_one_tab_stops_the_run_in_both_and_saves_nothing(
    deployment: Deployment, card_id: int, tabs: tuple[Any, Any, list[str]]
) -> None:
    first, second, _ = tabs
    shown = ask_slow_then_stop_in_the_second_tab(first, second, box=BOX, post=POST)
    stopped = f"{RUN}[data-status=stopped]"
    ((run_id, status, partial),) = deployment.query(
        "SELECT run_id, status, partial_text FROM relaybridge_agentrun"
    )
    assert status == "stopped" and partial == shown

    # Relay has no cancel: the agent finishes, and the relay worker turns its reply away.
    (worker,) = deployment.relay_workers()
    wait_until(
        lambda: worker.log_lines(f"run {run_id}: reply already saved; this one is ignored"),
        30,
        "the stopped run's late reply to reach the relay worker",
    )
    assert [c[2] for c in card_comments(deployment, card_id) if c[1] is None] == []
    for page in (first, second):
        assert page.locator(f"{stopped} .relaybridge-run__text").inner_text() == shown
        assert page.locator(f"{COMMENT}.comment--agent").count() == 0
