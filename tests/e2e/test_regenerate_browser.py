"""Regenerate in a real Chromium: pressed in one tab, seen live in both.

``run_demo`` runs as a subprocess (the embedded default), as in test_browser.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.demo.test_run_demo import running_demo

from .browser import chromium, log_in, new_page, open_task

pytestmark = [pytest.mark.browser, pytest.mark.slow]

REPLY = "article.comment--agent[data-agent=athena]"


def test_regenerate_in_one_tab_shows_the_new_answer_in_both(tmp_path: Path) -> None:
    with running_demo(tmp_path / "regenerate.sqlite3") as demo, chromium() as browser:
        context = browser.new_context()
        errors: list[str] = []
        first, second = new_page(context, errors), new_page(context, errors)
        log_in(first, demo.url)
        task_id = int(str(demo.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")[0][0]))
        for page in (first, second):
            open_task(page, demo.url, task_id)

        first.fill("textarea[name=body]", "@athena summarize this task")
        first.click("#comment-form button[type=submit]")
        for page in (first, second):
            page.wait_for_selector(REPLY)
            assert page.locator(".label-regenerated").count() == 0

        second.click(f"{REPLY} form[data-relaybridge-run-action=regenerate] button")
        regenerated = f"{REPLY}:has(.label-regenerated)"
        for page in (first, second):
            page.wait_for_selector(regenerated)
            assert page.locator(REPLY).count() == 2
            label = page.locator(f"{regenerated} .label-regenerated").inner_text()
            assert label == "Regenerated answer"
            record: dict[str, Any] = page.evaluate("window.__e2e")
            assert record is not None, "the page reloaded: the answer did not come live"
        rows = demo.query(
            "SELECT revision, regenerates_id IS NOT NULL, status FROM relaybridge_agentrun"
            " ORDER BY revision"
        )
        assert [tuple(row) for row in rows] == [(1, 0, "replied"), (2, 1, "replied")]

        # After a reload the label is still there, on the second answer only.
        first.reload()
        first.wait_for_selector(regenerated)
        assert first.locator(regenerated).count() == 1
        assert first.locator(REPLY).count() == 2
        assert errors == [], f"JavaScript errors: {errors}"
        context.close()
