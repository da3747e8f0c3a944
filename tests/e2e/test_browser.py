"""The task page in a real Chromium: a mention streams in live and settles as a reply,
and everything works under the example project's strict Content-Security-Policy.

``run_demo`` runs as a subprocess (the embedded default: fresh SQLite, in-memory
channel layer, eager Celery, the in-process Relay emulator) exactly as
``tests/demo`` starts it; Playwright drives Chromium against it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.demo.test_run_demo import running_demo

from .browser import (
    RECORDER,
    RUN,
    STREAM_READY,
    chromium,
    csp_violations,
    log_in,
    new_page,
    open_task,
    watch_csp,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

#: relaybridge's admin stylesheet was loaded (not blocked) and its rules were read.
ADMIN_CSS_LOADED = """() => [...document.styleSheets].some(
  (sheet) => (sheet.href || '').endsWith('/relaybridge/admin.css') && sheet.cssRules.length > 0
)"""


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


def test_the_pages_work_under_the_strict_content_security_policy(tmp_path: Path) -> None:
    """The policy is sent, and nothing on the pages needs an exception to it: sign-in,
    the task page, a mention streaming in live over the WebSocket, Stop, the admin's
    run ledger and agents page -- with no violation reported by the browser."""
    with running_demo(tmp_path / "csp.sqlite3") as demo, chromium() as browser:
        context = browser.new_context()
        violations: list[str] = []
        watch_csp(context, violations)
        errors: list[str] = []
        page = new_page(context, errors)
        base = demo.url.rstrip("/")

        log_in(page, demo.url)
        violations += csp_violations(page)
        task_id = int(str(demo.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")[0][0]))
        response = page.goto(f"{base}/tasks/{task_id}/")
        assert response is not None
        policy = response.headers.get("content-security-policy", "")
        for directive in ("script-src 'self'", "style-src 'self'", "default-src 'self'"):
            assert directive in policy, f"no {directive!r} in the policy: {policy!r}"
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy, policy
        port = base.rsplit(":", 1)[1]
        assert f"connect-src 'self' ws://127.0.0.1:{port}" in policy, policy
        page.wait_for_function(STREAM_READY)  # the WebSocket connected under connect-src
        page.evaluate(RECORDER)
        violations += csp_violations(page)
        assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)
        # The site's stylesheet applied (a blocked one would leave the header unstyled).
        assert (
            page.evaluate(
                "getComputedStyle(document.querySelector('.site-header')).borderBottomStyle"
            )
            == "solid"
        )

        page.fill("textarea[name=body]", "@slow take your time")
        page.click("#comment-form button[type=submit]")
        page.wait_for_selector(f"{RUN}[data-status=streaming] .relaybridge-run__text")
        page.click(f"{RUN} button:has-text('Stop')")
        stopped = page.wait_for_selector(f"{RUN}[data-status=stopped]")
        assert stopped is not None
        assert "Slow was stopped" in page.inner_text(f"{RUN} .relaybridge-run__status")
        record: dict[str, Any] = page.evaluate("window.__e2e")
        assert record is not None, "the page reloaded: Stop did not stay on the page"
        assert record["lengths"], "no text streamed in before Stop"
        assert page.locator(f"{RUN} button:has-text('Retry')").count() == 1
        violations += csp_violations(page)

        for path in ("/admin/relaybridge/agentrun/", "/admin/relaybridge/agentrun/agents/"):
            response = page.goto(base + path)
            assert response is not None and response.status == 200, path
            assert page.locator("#relaybridge-worker-status").count() == 1
            assert page.evaluate(ADMIN_CSS_LOADED), f"relaybridge/admin.css not applied on {path}"
            violations += csp_violations(page)

        assert violations == [], "Content-Security-Policy violations:\n" + "\n".join(violations)
        assert errors == [], f"JavaScript errors: {errors}"
        context.close()
