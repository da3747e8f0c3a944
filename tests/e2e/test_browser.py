"""The task page in a real Chromium: a mention streams in live and settles as a reply.

``run_demo`` runs as a subprocess (the embedded default: fresh SQLite, in-memory
channel layer, eager Celery, the in-process Relay emulator) exactly as
``tests/demo`` starts it; Playwright drives Chromium against it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_service
from tests.demo.test_run_demo import running_demo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000

# Polls the page every few milliseconds: was a placeholder shown, and which
# lengths did its streamed text go through?
RECORDER = """() => {
  window.__e2e = {placeholder: false, lengths: [], reloaded: false};
  window.setInterval(() => {
    const run = document.querySelector('[data-relaybridge-run]');
    if (!run) return;
    window.__e2e.placeholder = true;
    const text = run.querySelector('.relaybridge-run__text');
    const length = text ? text.textContent.length : 0;
    const seen = window.__e2e.lengths;
    if (length && seen[seen.length - 1] !== length) seen.push(length);
  }, 5);
}"""

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_mention_streams_in_and_settles_as_a_reply(tmp_path: Path) -> None:
    require_service("Chromium", os.path.exists(CHROMIUM), "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with running_demo(tmp_path / "e2e.sqlite3") as demo, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))

            page.goto(demo.url + "accounts/login/")
            page.fill("input[name=username]", "demo")
            page.fill("input[name=password]", "demo")
            page.click("button[type=submit]")
            page.wait_for_url(demo.url)

            task_id = demo.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")[0][0]
            page.goto(f"{demo.url}tasks/{task_id}/")
            # The script is loaded and its socket has had its first snapshot.
            page.wait_for_function(
                "() => window.relaybridgeStream && window.relaybridgeStream.streams.length"
                " && window.relaybridgeStream.streams[0].connectedOnce"
            )
            page.evaluate(RECORDER)

            page.fill("textarea[name=body]", "@athena summarize this task")
            page.click("#comment-form button[type=submit]")

            reply = page.wait_for_selector("article.comment--agent[data-agent=athena]")
            assert reply is not None
            record: dict[str, Any] = page.evaluate("window.__e2e")
            assert record is not None, "the page reloaded: the recorder is gone"
            assert record["placeholder"], "no placeholder appeared"
            final_text = reply.inner_text()
            lengths = record["lengths"]
            assert len(set(lengths)) >= 3, f"the text did not visibly grow: {lengths}"
            assert lengths == sorted(lengths), f"the streamed text shrank: {lengths}"
            agent = page.locator("article.comment--agent[data-agent=athena]")
            assert agent.locator(".badge--agent").inner_text() == "Agent"
            assert agent.locator(".label-ai").inner_text() == "AI-generated"
            assert "Summary of" in final_text
            assert page.query_selector("[data-relaybridge-run]") is None, "placeholder stayed"
            assert page.input_value("textarea[name=body]") == ""
            person = page.locator("article.comment--person", has_text="@athena summarize")
            assert person.count() == 1

            reply_id = reply.get_attribute("id")
            page.reload()
            kept = page.wait_for_selector(f"#{reply_id}.comment--agent")
            assert kept is not None and "Summary of" in kept.inner_text()
            assert page.locator("article.comment--agent[data-agent=athena]").count() == 1
            assert page.query_selector("[data-relaybridge-run]") is None
            assert errors == [], f"JavaScript errors: {errors}"
        finally:
            browser.close()
