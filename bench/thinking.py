"""Post → thinking: from a comment's POST to "… is thinking…" shown in a real browser.

Chromium (Debian's, driven by Playwright as in ``tests/e2e``) signs in, opens a task
page, waits for its stream to connect, and posts mentions through the page's own
form, one at a time. In the page, a ``submit`` listener (capture phase, so before
the page script's ``fetch``) notes ``performance.now()``; a MutationObserver notes
when a run placeholder that was not on the page before shows the thinking status,
and the next animation frame after it (when the browser paints it) is the figure.
Both clocks are the page's, so no clock is compared across processes.

Measured on the benchmark's multi-process stack (Daphne, Celery, the relay worker)
and on the embedded demo (``manage.py run_demo``: one process, SQLite, the in-memory
layer, eager Celery). Each post's run is stopped from the page once measured,
before the next post, so one post's work does not overlap the next one's figure;
the agents asked hold back their first word long enough that the page always has
a thinking state to show, however slow the POST. Relay has no cancel: a stopped
run's agent still answers, and until it has, the task's thread is not free for the
next event (protocol §6.2). On the stack the next post therefore waits for the held
answer to have come, or its run would wait for it unseen (with its Stop button) and
its own held answer would follow at once.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.e2e.browser import CHROMIUM, CHROMIUM_ARGS, STREAM_READY

from .stack import Stack
from .stats import distribution, median

BOX = "textarea[name=body]"
POST = "#comment-form button[type=submit]"
RUN = "[data-relaybridge-run]"
TIMEOUT_MS = 20_000
#: How long the load agent waits before answering: far longer than a POST takes on a
#: loaded machine (268 ms at the worst measured), so the page has a thinking state
#: to show. The next post waits for it (see the module's docstring).
HOLD_NS = 2_000_000_000
#: After a held answer's instant, the time for it to arrive and free the thread.
SETTLE_NS = 500_000_000

# The page-side stopwatch. ``before`` holds the runs already on the page when the
# comment was posted; only a new one counts.
STOPWATCH = """() => {
  const watch = {posted: null, dom: null, painted: null, run: null, before: [], statuses: []};
  window.__benchThinking = watch;
  const runs = () => [...document.querySelectorAll('[data-relaybridge-run]')];
  document.addEventListener('submit', (event) => {
    if (!event.target.matches('#comment-form')) return;  // not a Stop or Retry form
    watch.before = runs().map((run) => run.getAttribute('data-relaybridge-run'));
    watch.dom = null;
    watch.painted = null;
    watch.run = null;
    watch.posted = performance.now();
  }, true);
  const look = () => {
    if (watch.posted === null || watch.dom !== null) return;
    for (const run of runs()) {
      if (watch.before.includes(run.getAttribute('data-relaybridge-run'))) continue;
      const status = run.querySelector('.relaybridge-run__status');
      const said = status ? status.textContent : '';
      if (!/thinking/i.test(said)) continue;
      watch.dom = performance.now();
      watch.run = run.getAttribute('data-relaybridge-run');
      watch.statuses.push(said);
      requestAnimationFrame(() => { watch.painted = performance.now(); });
      return;
    }
  };
  new MutationObserver(look).observe(document.body, {
    subtree: true, childList: true, characterData: true, attributes: true,
  });
}"""


STOP = """(selector) => {
  const button = document.querySelector(selector);
  if (button) button.click();
  return Boolean(button);
}"""

# The stopwatch, with when the POST's response had fully arrived (Resource Timing:
# the first fetch the page started after the submit is the POST).
RESPONSE_TIMING = """() => {
  const watch = window.__benchThinking;
  const fetched = performance.getEntriesByType('resource').filter(
    (entry) => entry.initiatorType === 'fetch' && entry.startTime >= watch.posted);
  watch.response = fetched.length ? fetched[0].responseEnd : null;
  return watch;
}"""


class HeldAnswers:
    """The load agent's mentions, each holding its answer back ``HOLD_NS``, and a
    wait until the last one's answer has come (the thread is free again)."""

    def __init__(self) -> None:
        self._free_at_ns = 0

    def body(self) -> str:
        start = time.time_ns() + HOLD_NS
        self._free_at_ns = start + SETTLE_NS
        return f"@load tokens=1 rate=1000 start={start}"

    async def thread_free(self) -> None:
        wait_ns = self._free_at_ns - time.time_ns()
        if wait_ns > 0:
            await asyncio.sleep(wait_ns / 1e9)


async def _log_in(page: Any, base_url: str) -> None:
    base = base_url.rstrip("/")
    await page.goto(base + "/accounts/login/")
    await page.fill("input[name=username]", "demo")
    await page.fill("input[name=password]", "demo")
    await page.click("button[type=submit]")
    await page.wait_for_url(base + "/")


async def _post_and_time(page: Any, body: str, *, stop: bool) -> dict[str, float]:
    await page.fill(BOX, body)
    await page.click(POST)
    await page.wait_for_function(
        "() => window.__benchThinking && window.__benchThinking.painted !== null",
        timeout=TIMEOUT_MS,
    )
    watch: dict[str, Any] = await page.evaluate(RESPONSE_TIMING)
    # The run ends (replied, or stopped) before the next post, so runs never overlap.
    mine = f'{RUN}[data-relaybridge-run="{watch["run"]}"]'
    if stop:
        # Clicked from the page's script, as soon as the button is there: the page
        # re-renders its runs' buttons as the other runs on it change, which
        # Playwright's own click waits out (for as long as they keep changing).
        await page.wait_for_function(
            STOP,
            arg=f"{mine} form[data-relaybridge-run-action=stop] button",
            polling=50,
            timeout=TIMEOUT_MS,
        )
        await page.wait_for_selector(f"{mine}[data-status=stopped]", timeout=TIMEOUT_MS)
    else:
        await page.wait_for_selector(mine, state="detached", timeout=TIMEOUT_MS)
    return {
        "shown_ms": watch["painted"] - watch["posted"],
        "in_dom_ms": watch["dom"] - watch["posted"],
        # Where the time goes: the POST (the server saves the comment and renders the
        # page), then the page swapping the new list in.
        "post_response_ms": (
            watch["response"] - watch["posted"] if watch["response"] is not None else math.nan
        ),
    }


async def post_to_thinking(
    base_url: str,
    task_ids: Callable[[int], list[int]],
    *,
    body: Callable[[], str],
    stop: bool,
    rounds: int,
    per_round: int,
    before_post: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """``rounds`` rounds of ``per_round`` posts, each round on a task page of its own;
    ``before_post`` is awaited before each post (not timed)."""
    from playwright.async_api import async_playwright

    samples: list[list[dict[str, float]]] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            await _log_in(page, base_url)
            ids = task_ids(rounds + 1)
            # A first post, unmeasured: the server's first page and first run of a task.
            for n, task_id in enumerate(ids):
                await page.goto(f"{base_url.rstrip('/')}/tasks/{task_id}/")
                await page.wait_for_function(STREAM_READY)
                await page.evaluate(STOPWATCH)
                count = 1 if n == 0 else per_round
                found = []
                for _ in range(count):
                    if before_post is not None:
                        await before_post()
                    found.append(await _post_and_time(page, body(), stop=stop))
                if n > 0:
                    samples.append(found)
        finally:
            await browser.close()
    round_p50 = [distribution([s["shown_ms"] for s in found])["p50"] for found in samples]
    return {
        "rounds": rounds,
        "per_round": per_round,
        "median": round(median(round_p50), 2),
        "spread": round(max(round_p50) - min(round_p50), 2),
        "round_p50s": round_p50,
        "shown_ms": distribution([s["shown_ms"] for found in samples for s in found]),
        "in_dom_ms": distribution([s["in_dom_ms"] for found in samples for s in found]),
        "post_response_ms": distribution(
            [s["post_response_ms"] for found in samples for s in found]
        ),
    }


async def on_stack(stack: Stack, *, rounds: int, per_round: int) -> dict[str, Any]:
    """The benchmark's multi-process stack (tasks made through its ORM), pages from a
    Daphne of its own that also serves the page scripts (:mod:`bench.settings`)."""
    from . import actions

    env = {"RELAYBRIDGE_BENCH_SERVE_STATIC": "1"}
    base_url = await asyncio.to_thread(stack.deployment.start_daphne, env=env)

    def make(count: int) -> list[int]:
        made = actions.create_tasks(count, "Thinking")
        actions.close_connections()
        return made

    made = await asyncio.to_thread(make, rounds + 1)
    # The load agent holds its answer back (start=, wall-clock ns), so the run is
    # still thinking whenever the page shows it; it is stopped once measured.
    held = HeldAnswers()
    return await post_to_thinking(
        base_url,
        lambda _count: made,
        body=held.body,
        stop=True,
        rounds=rounds,
        per_round=per_round,
        before_post=held.thread_free,
    )


async def on_demo(*, rounds: int, per_round: int) -> dict[str, Any]:
    """The embedded demo (``run_demo``) in a process of its own, on a fresh SQLite file."""
    from tests.demo.test_run_demo import running_demo

    with (
        tempfile.TemporaryDirectory(prefix="relaybridge-bench-demo-") as scratch,
        running_demo(Path(scratch) / "demo.sqlite3") as demo,
    ):
        rows = await asyncio.to_thread(demo.query, "SELECT id FROM tasks_task ORDER BY id")
        ids = [int(str(row[0])) for row in rows]
        if not ids:
            raise RuntimeError("the demo was seeded with no task")
        return await post_to_thinking(
            demo.url,
            # The demo seeds a few tasks: rounds take them in turn.
            lambda count: [ids[n % len(ids)] for n in range(count)],
            # The demo dispatches within the POST (eager Celery), so an agent that
            # writes at once is already writing when the page first shows its run.
            # Sleepy thinks for 5 s; it is stopped once measured.
            body=lambda: "@sleepy a short question",
            stop=True,
            rounds=rounds,
            per_round=per_round,
        )


async def scenario(
    stack: Stack, params: Any, figures: dict[str, float], spreads: dict[str, float]
) -> dict[str, Any]:
    """Run with ``python -m bench``'s parameters; fills in the figures and their spreads."""
    rounds, per_round = params.thinking_rounds, params.thinking_per_round
    shown = {
        "post_to_thinking_p50_ms": await on_stack(stack, rounds=rounds, per_round=per_round),
        "post_to_thinking_p50_ms_demo": await on_demo(rounds=rounds, per_round=per_round),
    }
    for key, found in shown.items():
        figures[key] = found["median"]
        spreads[key] = found["spread"]
    return shown
