"""Reply to an agent, a follow-up without a mention and feedback, in a real Chromium.

Two tabs of one person on the same task: "Reply to Athena" fills the comment box
from the keyboard, the preview says a comment without a mention continues with
Athena (and offers the opt-out), a follow-up is answered, and a vote in one tab
shows in the other at once. Then the same without JavaScript: links and forms.
All under the example project's strict Content-Security-Policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.demo.test_run_demo import running_demo

from .browser import chromium, csp_violations, log_in, new_page, open_task, watch_csp

pytestmark = [pytest.mark.browser, pytest.mark.slow]

AGENT_REPLY = "article.comment--agent[data-agent=athena]"
BOX = "textarea[name=body]"
FOLLOW_UP = "[data-relaybridge-follow-up]"


def first_reply(page: Any, inside: str) -> Any:
    """``inside`` the page's first reply by Athena."""
    return page.locator(AGENT_REPLY).first.locator(inside)


def count(page: Any, which: str) -> str:
    found = first_reply(page, f"[data-relaybridge-feedback-count={which}]")
    return str(found.inner_text()).strip()


def test_reply_follow_up_and_feedback_in_two_tabs(tmp_path: Path) -> None:
    env = {"DEMO_FOLLOW_UP_WINDOW": "600"}
    with running_demo(tmp_path / "reply.sqlite3", env=env) as demo, chromium() as browser:
        context = browser.new_context()
        violations: list[str] = []
        watch_csp(context, violations)
        errors: list[str] = []
        first, second = new_page(context, errors), new_page(context, errors)
        log_in(first, demo.url)
        task_id = int(str(demo.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")[0][0]))
        for tab in (first, second):
            open_task(tab, demo.url, task_id)

        first.fill(BOX, "@athena summarize this task")
        first.click("#comment-form button[type=submit]")
        for tab in (first, second):
            tab.wait_for_selector(AGENT_REPLY)

        # Reply, from the keyboard: the box gets the mention and the focus, no reload.
        link = first.locator(f"{AGENT_REPLY} a[data-relaybridge-reply-to=athena]")
        assert link.inner_text() == "Reply to Athena"
        link.focus()
        first.keyboard.press("Enter")
        first.wait_for_function(f"() => document.querySelector('{BOX}').value === '@athena '")
        assert first.evaluate("document.activeElement.name") == "body"
        assert first.evaluate("window.__e2e") is not None, "Reply reloaded the page"

        # No mention: the preview says the comment continues with Athena, with an opt-out.
        first.fill(BOX, "")
        first.type(BOX, "And who signs it off?")
        first.wait_for_selector(f"{FOLLOW_UP}:not([hidden])")
        assert "Posting will continue with Athena." in first.inner_text(FOLLOW_UP)
        opt_out = first.locator(f"{FOLLOW_UP} input[name=relaybridge_no_follow_up]")
        assert opt_out.is_visible() and not opt_out.is_checked()
        # A mention instead: no follow-up.
        first.fill(BOX, "@klyve your view?")
        first.wait_for_selector(f"{FOLLOW_UP}[hidden]", state="attached")
        first.fill(BOX, "And who signs it off?")
        first.wait_for_selector(f"{FOLLOW_UP}:not([hidden])")
        first.click("#comment-form button[type=submit]")
        for tab in (first, second):
            tab.wait_for_function(
                f"() => document.querySelectorAll('{AGENT_REPLY}').length === 2", timeout=30_000
            )

        # Feedback in the first tab, seen in the second at once.
        first_reply(first, "button[data-relaybridge-vote=up]").click()
        for tab in (first, second):
            tab.wait_for_function(
                "() => document.querySelector('[data-relaybridge-feedback-count=up]')"
                ".textContent.trim() === '1'"
            )
            assert count(tab, "down") == "0"
            # The same person in both tabs: both show the vote as theirs.
            pressed = first_reply(tab, "button[data-relaybridge-vote=up]")
            assert pressed.get_attribute("aria-pressed") == "true"
        first_reply(second, "input[name=note]").fill("Too long after all")
        first_reply(second, "button[data-relaybridge-vote=down]").click()
        for tab in (first, second):
            tab.wait_for_function(
                "() => document.querySelector('[data-relaybridge-feedback-count=down]')"
                ".textContent.trim() === '1'"
            )
            assert count(tab, "up") == "0"
        assert demo.query("SELECT vote, note FROM relaybridge_replyfeedback") == [
            ("down", "Too long after all")
        ]
        for tab in (first, second):
            violations += csp_violations(tab)
        assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)
        assert errors == [], f"JavaScript errors: {errors}"
        context.close()

        # Without JavaScript: the Reply link pre-fills the box, a vote is a plain POST.
        plain = browser.new_context(java_script_enabled=False)
        page = new_page(plain, errors)
        log_in(page, demo.url)
        page.goto(f"{demo.url.rstrip('/')}/tasks/{task_id}/")
        first_reply(page, "a[data-relaybridge-reply-to=athena]").click()
        page.wait_for_url("**/?reply_to=athena#comment-form")
        assert page.input_value(BOX) == "@athena "
        first_reply(page, "button[data-relaybridge-vote=up]").click()
        page.wait_for_load_state()
        assert count(page, "up") == "1" and count(page, "down") == "0"
        plain.close()
