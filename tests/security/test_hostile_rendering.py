"""Hostile comments and agent replies in a real Chromium: nothing runs, nothing is fetched.

A whole deployment runs in processes (the emulator, Celery, the relay worker,
Daphne). A person posts a comment full of script, event-handler, ``javascript:``
and remote-image tricks that mentions ``@klyve``, the echo agent, so the same
text comes back as the agent's streamed answer and then as its saved, rendered
reply. The task page (live, then reloaded) and the admin pages that show the
comment, the reply and the run are opened in Chromium with a trap: every payload
calls ``window.__pwn`` or opens a dialog if it ever runs, and every request to
another host is recorded and refused.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.deployment.harness import Deployment
from tests.e2e.browser import chromium

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

TIMEOUT_MS = 20_000
REMOTE = "http://remote.example"

#: Each one runs ``__pwn`` (or a dialog, or a remote fetch) if it is ever live HTML.
HOSTILE_LINES = [
    "<script>__pwn('script')</script>",
    "<img src=x onerror=\"__pwn('img-onerror')\">",
    "<svg onload=\"__pwn('svg-onload')\"></svg>",
    "<details open ontoggle=\"__pwn('details')\">x</details>",
    "<input autofocus onfocus=\"__pwn('autofocus')\">",
    "<iframe src=\"javascript:__pwn('iframe')\"></iframe>",
    "<a href=\"javascript:__pwn('html-link')\">html link</a>",
    "[markdown link](javascript:__pwn('md-link'))",
    "[entity link](jav&#x61;script:__pwn('entity-link'))",
    "<javascript:__pwn('autolink')>",
    f"![remote image]({REMOTE}/md-image.png)",
    f'<img src="{REMOTE}/html-image.png">',
    f"<style>@import url({REMOTE}/style.css);</style>",
    f"<link rel=stylesheet href={REMOTE}/link.css>",
    f'<meta http-equiv="refresh" content="0;url={REMOTE}/meta">',
    "\"><script>__pwn('attribute-break')</script>",
    "<scr<script>ipt>__pwn('nested')</scr</script>ipt>",
    "<body onload=\"__pwn('body')\">",
    "{{ 7|add:35 }} {% now 'Y' %} <!-- comment --> ]]> alert('dialog')",
    "<script>alert('dialog')</script>",
]
HOSTILE = "\n\n".join(HOSTILE_LINES)

#: Installed before any page script: the flag every payload would raise, and a
#: record of whether hostile text ever streamed into a run's live text (as text).
TRAP = """
window.__pwned = [];
window.__pwn = (what) => window.__pwned.push(what);
window.__streamedHostile = false;
document.addEventListener('DOMContentLoaded', () => {
  new MutationObserver(() => {
    for (const text of document.querySelectorAll('.relaybridge-run__text')) {
      if (text.textContent.includes('onerror=')) window.__streamedHostile = true;
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
});
"""


class Trap:
    """What a page did that it must not: scripts run, dialogs opened, foreign requests."""

    def __init__(self, context: Any, base_url: str) -> None:
        self.host = urlsplit(base_url).netloc
        self.dialogs: list[str] = []
        self.foreign: list[str] = []
        self.errors: list[str] = []
        context.add_init_script(TRAP)
        context.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        url = route.request.url
        if urlsplit(url).netloc == self.host or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            self.foreign.append(url)
            route.abort()

    def watch(self, page: Any) -> Any:
        page.set_default_timeout(TIMEOUT_MS)
        page.on("dialog", self._dialog)
        page.on("pageerror", lambda error: self.errors.append(str(error)))
        return page

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def prove_it_springs(self, page: Any) -> None:
        """The same payloads as live HTML do trip the trap (else a pass proves nothing)."""
        page.set_content(
            f'<img src="{REMOTE}/probe.png"><img src=x onerror="__pwn(1)">'
            "<script>alert('probe')</script>"
        )
        page.wait_for_function("window.__pwned.length === 1")
        assert self.dialogs == ["probe"] and self.foreign == [f"{REMOTE}/probe.png"]
        self.dialogs.clear()
        self.foreign.clear()

    def assert_nothing_ran(self, page: Any, where: str) -> None:
        # Give focus- and load-triggered handlers their chance to fire.
        page.wait_for_load_state("load")
        page.evaluate("() => new Promise((done) => requestAnimationFrame(() => done(null)))")
        assert page.evaluate("window.__pwned") == [], f"script ran on {where}"
        assert self.dialogs == [], f"dialog opened on {where}: {self.dialogs}"
        assert self.foreign == [], f"remote requests from {where}: {self.foreign}"


def assert_links_are_safe(page: Any, where: str) -> None:
    hrefs = page.eval_on_selector_all(
        "article.comment a[href], .relaybridge-run a[href]",
        "links => links.map(link => link.getAttribute('href'))",
    )
    # "?…" is this page with a query (the reply's "Reply to Klyve" link): no scheme.
    safe = ("http://", "https://", "mailto:", "/", "#", "?")
    unsafe = [h for h in hrefs if not h.startswith(safe)]
    assert unsafe == [], f"unsafe links on {where}: {unsafe}"
    assert page.locator("article.comment img, article.comment iframe").count() == 0, where


def test_hostile_comments_and_replies_render_inert_on_the_page_and_in_the_admin(
    deployment: Deployment,
) -> None:
    deployment.start_emulator(token_delay_ms=5)
    deployment.start_celery()
    deployment.start_relay_worker()
    base = deployment.start_daphne()
    assert deployment.manage("seed_demo").returncode == 0
    [(task_id,)] = deployment.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")

    with chromium() as browser:
        context = browser.new_context()
        trap = Trap(context, base)
        page = trap.watch(context.new_page())
        trap.prove_it_springs(page)
        page.goto(f"{base}/accounts/login/")
        page.fill("input[name=username]", "demo")
        page.fill("input[name=password]", "demo")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")

        page.goto(f"{base}/tasks/{task_id}/")
        page.wait_for_function(
            "() => window.relaybridgeStream && window.relaybridgeStream.streams.length"
            " && window.relaybridgeStream.streams[0].connectedOnce"
        )
        page.fill("textarea[name=body]", f"@klyve {HOSTILE}")
        page.click("#comment-form button[type=submit]")
        # Live: the answer streams in as text, then the saved reply replaces it.
        reply = page.wait_for_selector("article.comment--agent[data-agent=klyve]")
        assert reply is not None
        trap.assert_nothing_ran(page, "the live task page")
        assert page.evaluate("window.__streamedHostile"), "the hostile text never streamed in"
        assert_links_are_safe(page, "the live task page")
        assert "html link" in reply.inner_text() and "markdown link" in reply.inner_text()

        page.reload()
        page.wait_for_selector("article.comment--agent[data-agent=klyve]")
        trap.assert_nothing_ran(page, "the reloaded task page")
        assert_links_are_safe(page, "the reloaded task page")
        person = page.locator("article.comment--person", has_text="@klyve").inner_text()
        # The person's text is shown as they wrote it: escaped, not dropped.
        assert "<script>__pwn('script')</script>" in person
        assert trap.errors == [], trap.errors

        rows = deployment.query(
            "SELECT r.id, r.reply_comment_id, r.comment_id FROM relaybridge_agentrun r"
            " WHERE r.agent_id = 'klyve' AND r.status = 'replied'"
        )
        [(run_pk, reply_pk, comment_pk)] = rows
        admin_pages = [
            "/admin/relaybridge/agentrun/",
            f"/admin/relaybridge/agentrun/{run_pk}/change/",
            "/admin/tasks/comment/",
            f"/admin/tasks/comment/{reply_pk}/change/",
            f"/admin/tasks/comment/{comment_pk}/change/",
            f"/admin/tasks/task/{task_id}/change/",
        ]
        for path in admin_pages:
            response = page.goto(base + path)
            assert response is not None and response.status == 200, path
            trap.assert_nothing_ran(page, path)
        assert "__pwn('script')" in page.content(), "the admin did not show the text at all"
        assert trap.errors == [], trap.errors
