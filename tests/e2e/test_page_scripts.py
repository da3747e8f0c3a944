"""The stream scripts in a real Chromium against a host's own comment markup.

No server: the page is a django-contrib-comments-like list (ids ``c<pk>``, not
relaybridge's), the scripts are relaybridge's static files, and a stand-in
WebSocket lets the test play the server's messages. What it checks is the page
contract: comments found by ``data-relaybridge-comment-id``, fragments from the
server, and a reply never inserted twice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .browser import chromium, new_page

STATIC = Path(__file__).resolve().parents[2] / "relaybridge" / "static" / "relaybridge"
SCRIPTS = [
    "stream-state.js",
    "stream-socket.js",
    "stream-render.js",
    "stream-page.js",
    "stream.js",
]
RUN = "5e0c3a52-8a47-4f53-9d3e-2f0f6b7c1a01"

FAKE_SOCKET = """
window.__sockets = [];
window.WebSocket = class {
  constructor(url) { this.url = url; this.readyState = 1; window.__sockets.push(this); }
  send() {}
  close() {}
};
"""

TEXTS = {
    "seconds": "{s} s",
    "minutes": "{m} min",
    "minutes_seconds": "{m} min {s} s",
    "retrying_in": "retrying in {delay}",
    "retrying_now": "retrying now…",
    "retrying_soon": "retrying soon",
    "action_failed": "That did not work.",
    "unreachable": "Could not reach the server.",
}

HOST_PAGE = f"""<!doctype html>
<html><body>
<input type="hidden" name="csrfmiddlewaretoken" value="page-token">
<div class="relaybridge-stream" data-relaybridge-ws="/ws/tasks/1/"
     data-relaybridge-runs="runs" data-relaybridge-texts="texts">
  <div role="status" aria-live="polite" id="announcer"></div>
  <script id="runs" type="application/json">[]</script>
  <script id="texts" type="application/json">{json.dumps(TEXTS)}</script>
</div>
<div id="comments" data-relaybridge-comment-list>
  <div id="c5" class="comment" data-relaybridge-comment-id="5">
    <p>@slow please</p><div data-relaybridge-comment-runs="5"></div>
  </div>
</div>
</body></html>"""

RUN_HTML = f"""<div class="x-run" data-relaybridge-run="{RUN}" data-status="accepted">
  <p data-relaybridge-run-status>Slow is thinking…</p>
  <div data-relaybridge-run-text hidden></div>
  <form method="post" action="/stop/" data-relaybridge-run-action="stop">
    <input type="hidden" name="csrfmiddlewaretoken" value=""><button>Stop</button>
  </form>
</div>"""

REPLY_FRAGMENT = '<div id="c6" class="comment" data-relaybridge-comment-id="6"><p>Done.</p></div>'


def run_state(**fields: Any) -> dict[str, Any]:
    return {
        "run": RUN,
        "agent_id": "slow",
        "agent_name": "Slow",
        "comment_id": "5",
        "status": "accepted",
        "retry_in": None,
        "code": "",
        "message": "",
        "text": "",
        "seq": 0,
        "status_text": "Slow is thinking…",
        "writing_text": "Slow is writing…",
        "status_template": "",
        "html": RUN_HTML,
        **fields,
    }


@pytest.fixture
def page() -> Iterator[Any]:
    with chromium() as browser:
        context = browser.new_context()
        context.add_init_script(FAKE_SOCKET)
        errors: list[str] = []
        page = new_page(context, errors)
        page.set_content(HOST_PAGE)
        for name in SCRIPTS:
            page.add_script_tag(content=(STATIC / name).read_text())
        page.wait_for_function("() => window.__sockets.length === 1")
        yield page
        assert errors == []
        context.close()


def send(page: Any, message: dict[str, Any], socket: int = -1) -> None:
    page.evaluate(
        "([m, i]) => window.__sockets.at(i).onmessage({data: JSON.stringify(m)})",
        [message, socket],
    )


def count(page: Any, selector: str) -> int:
    return int(page.evaluate("(s) => document.querySelectorAll(s).length", selector))


def test_a_hosts_comments_get_runs_and_one_reply_whatever_their_ids(page: Any) -> None:
    send(page, {"type": "snapshot", "runs": [run_state()]})
    run = f'#c5 [data-relaybridge-comment-runs="5"] [data-relaybridge-run="{RUN}"]'
    assert count(page, run) == 1
    # The server's form, with the page's token filled in (fragments carry nobody's).
    assert page.input_value(f"{run} input[name=csrfmiddlewaretoken]") == "page-token"

    send(page, {"type": "run.delta", "run": RUN, "seq": 1, "text": "Almost"})
    assert page.inner_text(f"{run} [data-relaybridge-run-text]") == "Almost"
    assert page.inner_text(f"{run} [data-relaybridge-run-status]") == "Slow is writing…"
    assert page.get_attribute(run, "data-status") == "streaming"
    assert page.inner_text("#announcer") == "Slow is writing…"

    reply = {
        "type": "run.reply",
        "run": RUN,
        "comment_id": "6",
        "html": "<p>Done.</p>",
        "agent_id": "slow",
        "fragment": REPLY_FRAGMENT,
        "status_text": "Slow replied.",
    }
    send(page, reply)
    assert count(page, '[data-relaybridge-comment-id="6"]') == 1
    assert count(page, "[data-relaybridge-run]") == 0
    assert page.inner_text("#announcer") == "Slow replied."

    # The host's list refreshed from the server: its own markup of the same reply.
    refreshed = (
        '<div id="c5" data-relaybridge-comment-id="5">'
        '<div data-relaybridge-comment-runs="5"></div></div>'
        '<div id="c6" class="host-reply" data-relaybridge-comment-id="6">Done.</div>'
    )
    page.evaluate(
        """(html) => {
          document.getElementById("comments").innerHTML = html;
          window.relaybridgeStream.streams[0].update();
        }""",
        refreshed,
    )
    send(page, reply)
    assert count(page, '[data-relaybridge-comment-id="6"]') == 1
    assert count(page, "#c6.host-reply") == 1

    # The socket drops and comes back: a snapshot without the run adds nothing.
    page.evaluate("() => window.__sockets[0].onclose({code: 1006})")
    page.wait_for_function("() => window.__sockets.length === 2", timeout=5000)
    send(page, {"type": "snapshot", "runs": []})
    send(page, reply)
    assert count(page, '[data-relaybridge-comment-id="6"]') == 1
    assert count(page, "[data-relaybridge-run]") == 0


def test_a_second_worker_taking_over_never_shrinks_the_text(page: Any) -> None:
    send(page, {"type": "snapshot", "runs": [run_state(status="streaming")]})
    text = f'[data-relaybridge-run="{RUN}"] [data-relaybridge-run-text]'
    page.evaluate(
        """(selector) => {
          window.__lengths = [];
          const look = () => {
            const box = document.querySelector(selector);
            const length = box ? box.textContent.length : 0;
            if (window.__lengths.at(-1) !== length) window.__lengths.push(length);
          };
          new MutationObserver(look).observe(document.body,
            {subtree: true, childList: true, characterData: true, attributes: true});
        }""",
        text,
    )
    send(page, {"type": "run.delta", "run": RUN, "seq": 1, "text": "Sorry"})
    send(page, {"type": "run.delta", "run": RUN, "seq": 2, "text": " for the wait, here"})
    page.evaluate("() => window.__sockets[0].onclose({code: 1006})")
    page.wait_for_function("() => window.__sockets.length === 2", timeout=5000)
    taken_over = run_state(status="streaming", text="Sorry f", seq=1)
    send(page, {"type": "snapshot", "runs": [taken_over]})
    send(page, {"type": "run.delta", "run": RUN, "seq": 2, "text": "or t"})
    send(page, {"type": "run.delta", "run": RUN, "seq": 3, "text": "he wait, here is my slow"})
    lengths = page.evaluate("window.__lengths")
    assert lengths == sorted(lengths), f"the text shrank: {lengths}"
    assert page.inner_text(text) == "Sorry for the wait, here is my slow"


def test_a_runs_text_from_the_page_markup_and_a_long_text_in_parts() -> None:
    """The page's runs JSON carries no texts (the markup has them, once); a long text
    comes as a status with ``parts`` and that many ``run.text`` messages."""
    failed_html = RUN_HTML.replace('data-status="accepted"', 'data-status="failed"')
    with chromium() as browser:
        context = browser.new_context()
        context.add_init_script(FAKE_SOCKET)
        errors: list[str] = []
        page = new_page(context, errors)
        check_text_from_markup_and_parts(page, failed_html)
        assert errors == []
        context.close()


def check_text_from_markup_and_parts(page: Any, failed_html: str) -> None:
    page.set_content(
        HOST_PAGE.replace(
            '<script id="runs" type="application/json">[]</script>',
            '<script id="runs" type="application/json">'
            + json.dumps([run_state(status="failed", status_text="Slow failed.", html=failed_html)])
            + "</script>",
        ).replace(
            '<div data-relaybridge-comment-runs="5"></div>',
            '<div data-relaybridge-comment-runs="5">'
            + failed_html.replace(
                "<div data-relaybridge-run-text hidden></div>",
                "<div data-relaybridge-run-text>Kept from before.</div>",
            )
            + "</div>",
        )
    )
    for name in SCRIPTS:
        page.add_script_tag(content=(STATIC / name).read_text())
    page.wait_for_function("() => window.__sockets.length === 1")
    text = f'[data-relaybridge-run="{RUN}"] [data-relaybridge-run-text]'
    assert page.inner_text(text) == "Kept from before."
    assert page.inner_text(f'[data-relaybridge-run="{RUN}"] [data-relaybridge-run-status]') == (
        "Slow failed."
    )

    long = ["a" * 40_000, "b" * 40_000, "c" * 10]
    send(page, {"type": "run.status", **run_state(status="streaming", seq=3, parts=3)})
    for number, part in enumerate(long, start=1):
        send(page, {"type": "run.text", "run": RUN, "seq": 3, "part": number, "text": part})
    assert page.inner_text(text) == "".join(long)
    send(page, {"type": "run.delta", "run": RUN, "seq": 4, "text": "!"})
    assert page.inner_text(text) == "".join(long) + "!"
