"""Chromium for the browser tests: Debian's build, driven by Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.conftest import require_service
from tests.deployment.waiting import wait_until

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

# Watches the page's DOM: was a placeholder shown, which lengths did its streamed
# text go through, which status lines did it show? A MutationObserver sees every
# change, even in a background tab, where timers are throttled to one a second.
# (A reload would drop the record.)
RECORDER = """() => {
  const record = {placeholder: false, lengths: [], statuses: []};
  window.__e2e = record;
  const look = () => {
    const run = document.querySelector('[data-relaybridge-run]');
    if (!run) return;
    record.placeholder = true;
    const text = run.querySelector('.relaybridge-run__text');
    const length = text ? text.textContent.length : 0;
    if (length && record.lengths[record.lengths.length - 1] !== length) record.lengths.push(length);
    const status = run.querySelector('.relaybridge-run__status');
    const said = status ? status.textContent : '';
    if (said && record.statuses[record.statuses.length - 1] !== said) record.statuses.push(said);
  };
  new MutationObserver(look).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
  look();
}"""

# Records every Content-Security-Policy violation of every page of the context, from
# the first byte of each document on (an init script runs before the page's own).
CSP_WATCHER = """
window.__cspViolations = [];
document.addEventListener('securitypolicyviolation', (event) => {
  window.__cspViolations.push(
    `${event.effectiveDirective} blocked ${event.blockedURI || 'inline'}`
    + ` at ${event.sourceFile || document.location.pathname}:${event.lineNumber}`
    + (event.sample ? ` (${event.sample})` : '')
  );
}, true);
"""

#: True once the page's stream script has had its first snapshot.
STREAM_READY = (
    "() => window.relaybridgeStream && window.relaybridgeStream.streams.length"
    " && window.relaybridgeStream.streams[0].connectedOnce"
)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (skips, or fails in CI, when it is not installed)."""
    require_service("Chromium", os.path.exists(CHROMIUM), "apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(context: Any, errors: list[str]) -> Any:
    """A page with the default timeout whose JavaScript errors land in ``errors``."""
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def watch_csp(context: Any, violations: list[str]) -> None:
    """Collect into ``violations`` what the browser reports blocking under the pages'
    Content-Security-Policy: its console lines about the policy (which name inline
    code and styles too) as they come. :func:`csp_violations` adds the DOM events."""
    context.add_init_script(script=CSP_WATCHER)

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(f"console: {message.text}")

    context.on("console", on_console)


def csp_violations(page: Any) -> list[str]:
    """The ``securitypolicyviolation`` events the current document has seen."""
    return list(page.evaluate("window.__cspViolations || ['the CSP watcher did not run']"))


def log_in(page: Any, base_url: str, username: str = "demo", password: str = "demo") -> None:
    page.goto(base_url.rstrip("/") + "/accounts/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(base_url.rstrip("/") + "/")


def open_task(page: Any, base_url: str, task_id: int) -> None:
    """The task page, with its stream connected and the recorder running."""
    open_thread_page(page, f"{base_url.rstrip('/')}/tasks/{task_id}/")


def open_thread_page(page: Any, url: str) -> None:
    """A page with relaybridge's stream on it, once connected, with the recorder running."""
    page.goto(url)
    page.wait_for_function(STREAM_READY)
    page.evaluate(RECORDER)


RUN = "[data-relaybridge-run]"


def ask_slow_then_stop_in_the_second_tab(first: Any, second: Any, *, box: str, post: str) -> str:
    """Ask @slow in ``first``, press Stop in ``second`` while it streams, and check that
    both tabs show the run stopped, with Retry and the same partial text; returns it."""
    first.fill(box, "@slow take your time")
    first.click(post)
    streaming = f"{RUN}[data-status=streaming] .relaybridge-run__text"
    for page in (first, second):
        page.wait_for_selector(streaming)
    second.click(f"{RUN} button:has-text('Stop')")

    stopped = f"{RUN}[data-status=stopped]"
    for page in (first, second):
        page.wait_for_selector(stopped)
        status = page.locator(f"{stopped} .relaybridge-run__status").inner_text()
        assert "Slow was stopped" in status, status
        assert page.locator(f"{stopped} button:has-text('Retry')").count() == 1

    # A token the worker buffered while Stop read the text may have reached a page
    # before the stop did; it stays with the run and follows in one more push
    # (relaybridge.views._stop), so a tab may show "stopped" a moment before its
    # final text.
    seen: list[str] = []

    def same_text() -> str | None:
        seen[:] = [
            str(page.locator(f"{stopped} .relaybridge-run__text").inner_text())
            for page in (first, second)
        ]
        return seen[0] if seen[0] == seen[1] and seen[0] else None

    try:
        return wait_until(same_text, 10, "both tabs to show the same partial text")
    except AssertionError:
        raise AssertionError(f"the tabs disagree: {seen}") from None
