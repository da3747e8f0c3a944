"""The task page in a real Chromium against a production-shaped deployment.

Every part runs as its own process, as in production: Daphne serving the project,
a Celery worker, ``manage.py relay_worker``, the Relay emulator, Redis and
PostgreSQL (``tests/deployment``). Two tabs of one signed-in browser watch the same
task, so what one tab does must reach the other through Redis, not through the page.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from typing import Any

import pytest

from tests.deployment.harness import Deployment
from tests.deployment.waiting import assert_stays, wait_until

from .browser import ask_slow_then_stop_in_the_second_tab, chromium, log_in, new_page, open_task

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

HINT = "#relaybridge-mention-hint"
OPTIONS = f"{HINT}-listbox [role=option]"
RUN = "[data-relaybridge-run]"
BOX = "textarea[name=body]"
POST = "#comment-form button[type=submit]"
#: The emulator's built-in agents, as the relay worker's discovery lists them.
DISCOVERED = {"athena", "klyve", "offline", "broken", "sleepy", "stall", "slow"}
#: The offline agent's run is retried 5 times, 2 + 4 + 8 + 16 + 32 s apart.
OFFLINE_RETRIES_S = 2 + 4 + 8 + 16 + 32


@pytest.fixture
def site(deployment: Deployment) -> str:
    """Every process started, the demo data seeded, the relay worker connected."""
    return deployment.start_site()


@pytest.fixture
def tabs(site: str, deployment: Deployment) -> Iterator[tuple[Any, Any, int, list[str]]]:
    """Two tabs of one signed-in browser on the same task, and their JavaScript errors."""
    task_id = int(deployment.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")[0][0])
    with chromium() as browser:
        context = browser.new_context()
        errors: list[str] = []
        first, second = new_page(context, errors), new_page(context, errors)
        log_in(first, site)
        open_task(first, site, task_id)
        open_task(second, site, task_id)
        yield first, second, task_id, errors
        assert errors == [], f"JavaScript errors: {errors}"


def option_ids(page: Any) -> list[str]:
    return [str(o.get_attribute("data-agent-id")) for o in page.query_selector_all(OPTIONS)]


def test_a_mention_chosen_from_the_list_streams_to_both_tabs_and_settles(
    deployment: Deployment, tabs: tuple[Any, Any, int, list[str]]
) -> None:
    first, second, task_id, _ = tabs
    box = first.locator(BOX)
    box.click()
    box.press_sequentially("@")
    first.wait_for_selector(OPTIONS)
    assert set(option_ids(first)) == DISCOVERED
    assert box.get_attribute("aria-expanded") == "true"
    box.press("ArrowDown")
    selected = first.locator(f"{OPTIONS}[aria-selected=true]")
    assert selected.get_attribute("data-agent-id") == option_ids(first)[1]
    assert box.get_attribute("aria-activedescendant") == selected.get_attribute("id")

    box.press_sequentially("ath")
    first.wait_for_function(
        f"() => document.querySelectorAll({OPTIONS!r}).length === 1",
    )
    option = first.locator(OPTIONS)
    assert option.get_attribute("data-agent-id") == "athena"
    assert "Athena" in option.inner_text() and "@athena" in option.inner_text()
    box.press("Enter")
    assert box.input_value() == "@athena "
    assert first.locator(f"{HINT}-listbox").is_hidden()
    box.press_sequentially("summarize this task")
    preview = first.locator(f"{HINT}-preview")
    preview.wait_for(state="visible")
    assert preview.inner_text() == "Posting will call Athena."
    first.click(POST)

    reply = "article.comment--agent[data-agent=athena]"
    for page in (first, second):
        page.wait_for_selector(reply)
    for name, page in (("first", first), ("second", second)):
        record: dict[str, Any] = page.evaluate("window.__e2e")
        assert record is not None, f"the {name} tab reloaded"
        assert record["placeholder"], f"the {name} tab showed no placeholder"
        lengths = record["lengths"]
        assert len(set(lengths)) >= 3, f"the {name} tab did not see the text grow: {lengths}"
        assert lengths == sorted(lengths), f"the {name} tab saw the text shrink: {lengths}"
    ids = {page.locator(reply).get_attribute("id") for page in (first, second)}
    assert len(ids) == 1, f"the tabs show different replies: {ids}"
    assert preview.is_hidden(), "the preview outlived the posted comment"

    saved = deployment.agent_comments(task_id)
    assert [c.agent_id for c in saved] == ["athena"]
    assert f"comment-{saved[0].id}" in ids
    first.reload()
    first.wait_for_selector(reply)
    assert first.locator(reply).count() == 1
    assert "Summary of" in first.locator(reply).inner_text()
    assert first.query_selector(RUN) is None


def test_stop_in_one_tab_keeps_the_partial_text_in_both(
    deployment: Deployment, tabs: tuple[Any, Any, int, list[str]]
) -> None:
    first, second, task_id, _ = tabs
    shown = ask_slow_then_stop_in_the_second_tab(first, second, box=BOX, post=POST)
    stopped = f"{RUN}[data-status=stopped]"
    assert shown != "Sorry for the wait, here is my slow answer."
    (run,) = deployment.runs()
    assert run.status == "stopped" and run.partial_text == shown

    # Relay has no cancel: the agent finishes its answer (about one word a second),
    # and none of what it still sends may reach the page or the thread.
    def unchanged() -> bool:
        texts = [p.locator(f"{stopped} .relaybridge-run__text").inner_text() for p in tabs[:2]]
        (now,) = deployment.runs()
        return (
            texts == [shown, shown]
            and now.status == "stopped"
            and not deployment.agent_comments(task_id)
        )

    assert_stays(unchanged, 8, "the stopped run to stay as it was", interval=0.5)


def test_an_offline_agent_counts_down_its_retries_then_fails_with_retry(
    deployment: Deployment, tabs: tuple[Any, Any, int, list[str]]
) -> None:
    first, second, _, _ = tabs
    first.fill(BOX, "@offline are you there?")
    first.click(POST)
    failed = f"{RUN}[data-status=failed]"
    for page in (first, second):
        page.wait_for_selector(failed, timeout=(OFFLINE_RETRIES_S + 45) * 1000)

    countdown = re.compile(r"offline — retrying in (\d+) s$")
    for name, page in (("first", first), ("second", second)):
        statuses = page.evaluate("window.__e2e.statuses")
        seconds = [int(m.group(1)) for s in statuses if (m := countdown.search(s))]
        # A countdown: within one wait, the seconds left go down one by one.
        steps = sum(1 for a, b in itertools.pairwise(seconds) if a - b == 1)
        assert steps >= 3, f"the {name} tab showed no countdown: {statuses}"
        status = page.locator(f"{failed} .relaybridge-run__status").inner_text()
        assert "offline" in status.lower(), status
    (run,) = deployment.runs()
    assert run.status == "failed" and run.error_code == "AGENT_OFFLINE"
    assert run.attempts >= 6

    second.click(f"{failed} button:has-text('Retry')")
    for page in (first, second):
        page.wait_for_selector(f"{RUN}:not([data-status=failed])")
    wait_until(
        lambda: deployment.runs()[0].status != "failed", 15, "the retried run to leave failed"
    )


def test_a_page_whose_server_died_reconnects_and_loses_or_doubles_nothing(
    deployment: Deployment, site: str, tabs: tuple[Any, Any, int, list[str]]
) -> None:
    first, _, task_id, _ = tabs
    first.fill(BOX, "@slow take your time")
    first.click(POST)
    first.wait_for_selector(f"{RUN}[data-status=streaming] .relaybridge-run__text")

    (daphne,) = [p for p in deployment.processes if p.name == "daphne"]
    daphne.kill()
    first.wait_for_function(
        "() => !window.relaybridgeStream.streams[0].socket"
        " || window.relaybridgeStream.streams[0].socket.readyState > 1"
    )
    # The agent goes on streaming while no page can hear it: the reply the page
    # shows below can only come through a socket opened after the restart.
    assert deployment.runs()[0].status in {"accepted", "streaming"}
    deployment.start_daphne(port=int(site.rsplit(":", 1)[1]))

    reply = "article.comment--agent[data-agent=slow]"
    first.wait_for_selector(reply)
    answer = "Sorry for the wait, here is my slow answer."
    assert first.locator(f"{reply} .comment__body").inner_text().strip() == answer
    lengths = first.evaluate("window.__e2e.lengths")
    assert lengths == sorted(lengths), f"the text shrank or restarted: {lengths}"
    assert max(lengths) <= len(answer), f"text was doubled: {lengths}"
    assert len(deployment.agent_comments(task_id)) == 1


def test_an_answer_lost_with_relay_is_asked_again_and_replaces_the_old_text(
    deployment: Deployment, tabs: tuple[Any, Any, int, list[str]]
) -> None:
    first, _, task_id, _ = tabs
    first.fill(BOX, "@slow take your time")
    first.click(POST)
    first.wait_for_selector(f"{RUN}[data-status=streaming] .relaybridge-run__text")

    # Relay dies mid-answer and comes back knowing nothing of the event.
    emulator = deployment.emulator
    assert emulator is not None
    emulator.kill()
    emulator.start()

    reply = "article.comment--agent[data-agent=slow]"
    first.wait_for_selector(reply, timeout=90_000)
    answer = "Sorry for the wait, here is my slow answer."
    assert first.locator(f"{reply} .comment__body").inner_text().strip() == answer
    statuses = first.evaluate("window.__e2e.statuses")
    assert any("Connection to Relay was lost — asking Slow again" in s for s in statuses), statuses
    lengths = first.evaluate("window.__e2e.lengths")
    # The old text stays until the new attempt's first word replaces it: one step
    # back at most, and the text grows steadily on either side of it, never doubled.
    drops = [(a, b) for a, b in itertools.pairwise(lengths) if b < a]
    assert len(drops) <= 1, f"the text jumped about: {lengths}"
    assert max(lengths) <= len(answer), f"text was doubled: {lengths}"
    assert len(deployment.agent_comments(task_id)) == 1
    (run,) = deployment.runs()
    assert run.status == "replied" and run.attempts == 2
    assert run.payload is not None and run.payload["relaybridge_attempt"] == 2
