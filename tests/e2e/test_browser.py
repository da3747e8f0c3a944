"""The task page in a real Chromium: a mention streams in live and settles as a reply.

``run_demo`` runs as a subprocess (the embedded default: fresh SQLite, in-memory
channel layer, eager Celery, the in-process Relay emulator) exactly as
``tests/demo`` starts it; Playwright drives Chromium against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.demo.test_run_demo import running_demo

from .browser import chromium, log_in, new_page, open_task

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_a_mention_streams_in_and_settles_as_a_reply(tmp_path: Path) -> None:
    with running_demo(tmp_path / "e2e.sqlite3") as demo, chromium() as browser:
        errors: list[str] = []
        page = new_page(browser, errors)
        log_in(page, demo.url)
        task_id = demo.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")[0][0]
        open_task(page, demo.url, int(str(task_id)))

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
