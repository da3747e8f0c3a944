"""Agent Markdown becomes sanitized HTML: nothing active, no images, safe links."""

from __future__ import annotations

import re
from typing import Any

import pytest

from relaybridge.rendering import render_agent_markdown as render

TAG = re.compile(r"<(/?[a-zA-Z0-9]+)")
EVENT_HANDLER = re.compile(r"<[^>]*\son\w+\s*=", re.IGNORECASE)
UNSAFE_HREF = re.compile(r"href=\"(?!https?:|mailto:)", re.IGNORECASE)


def test_markdown_renders() -> None:
    html = render("# Plan\n\n**bold** _em_ `code`\n\n- one\n- two\n\n> quote\n\n```\nx < 1\n```")
    for fragment in (
        "<h1>Plan</h1>",
        "<strong>bold</strong>",
        "<em>em</em>",
        "<code>code</code>",
        "<li>one</li>",
        "<blockquote>",
        "<pre><code>x &lt; 1\n</code></pre>",
    ):
        assert fragment in html


def test_tables_render() -> None:
    html = render("| a | b |\n|---|--:|\n| 1 | 2 |")
    assert "<table>" in html and "<th>a</th>" in html and "<td" in html


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert(1)</script>",
        "hi <img src=x onerror=alert(1)>",
        '<a href="javascript:alert(1)">x</a>',
        "<iframe src=https://evil.example></iframe>",
        '<p onclick="alert(1)">x</p>',
        "<style>body{display:none}</style>",
    ],
)
def test_raw_html_is_inert(text: str) -> None:
    html = render(text)
    tags = set(TAG.findall(html))
    assert tags <= {"p", "/p"}
    assert not EVENT_HANDLER.search(html)
    assert "&lt;" in html  # shown as text


@pytest.mark.parametrize(
    "text",
    [
        "[click](javascript:alert(1))",
        "[click](JAVASCRIPT:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD4=)",
        "[click](vbscript:msgbox)",
        "<javascript:alert(1)>",
    ],
)
def test_dangerous_links_lose_their_href(text: str) -> None:
    html = render(text)
    assert not UNSAFE_HREF.search(html)


def test_safe_links_get_rel() -> None:
    html = render("[docs](https://example.com/a?b=1) and <mailto:a@example.com>")
    assert 'href="https://example.com/a?b=1"' in html
    assert 'rel="nofollow noopener noreferrer"' in html
    assert 'href="mailto:a@example.com"' in html


@pytest.mark.parametrize(
    "text",
    ["![tracker](https://evil.example/pixel.png)", "![x][r]\n\n[r]: http://evil.example/p.gif"],
)
def test_no_images_at_all(text: str) -> None:
    html = render(text)
    assert "<img" not in html and "evil.example" not in html


def test_input_size_is_bounded(settings: Any) -> None:
    settings.RELAYBRIDGE_RENDER_MAX_CHARS = 1_000
    html = render("a" * 10_000)
    assert len(html) < 1_200
    assert "shortened for display" in html
