"""Agent Markdown becomes sanitized HTML: nothing active, no images, safe links."""

from __future__ import annotations

import re
from typing import Any

import pytest

from relaybridge.conf import relay_settings
from relaybridge.rendering import (
    PLAIN_DEPTH,
    PLAIN_MARKUP,
    markup_count,
    render_agent_text,
    render_digest,
)
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


# -- the parser's worst cases are bounded ---------------------------------------------------
#
# Each input below costs the Markdown parser about a second at 100,000 characters
# (delimiter runs, brackets, table cells, line starts), or nests deeper than the
# parser keeps. Beyond the bounds a reply is escaped plain text: the structure of
# its HTML is paragraphs and line breaks only, whatever the input.

PLAIN_TAGS = {"p", "/p", "br"}
N = 100_000


def tags(html: str) -> set[str]:
    return {name.lower() for name in TAG.findall(html)}


@pytest.mark.parametrize(
    "text",
    [
        "[" * N,
        "[a](" * (N // 4),
        "*a" * (N // 2),
        "*a_" * (N // 3),
        "*_" * (N // 4) + "x" + "_*" * (N // 4),
        "`" * N,
        "`a" * (N // 2),
        "~~a" * (N // 3),
        "<" * N,
        "|a" * 50 + "|\n" + "|-" * 50 + "|\n" + ("|a" * 50 + "|\n") * 980,
        "a\n" * (N // 2),
        "\\*" * (N // 2),
    ],
    ids=[
        "brackets", "link-openers", "star-runs", "mixed-delimiters", "nested-emphasis",
        "backticks", "code-span-openers", "strikethrough", "angles", "table", "lines",
        "escapes",
    ],
)  # fmt: skip
def test_markup_heavy_text_beyond_the_bound_is_plain_text(text: str) -> None:
    assert markup_count(text) > relay_settings.RENDER_MAX_MARKUP
    rendered = render_agent_text(text)
    assert rendered.plain == PLAIN_MARKUP
    assert tags(rendered.html) <= PLAIN_TAGS


def test_the_plain_fallback_escapes_and_keeps_the_text() -> None:
    text = "<script>alert(1)</script> [x](javascript:alert(1)) " + "[" * 20_000 + " the end"
    rendered = render_agent_text(text)
    assert rendered.plain == PLAIN_MARKUP
    assert "<script" not in rendered.html and "&lt;script&gt;" in rendered.html
    assert "<a" not in rendered.html and rendered.html.rstrip().endswith("the end</p>")


@pytest.mark.parametrize(
    "text",
    [
        "> " * 30 + "deep\n\nafter the quote",
        "".join("  " * level + "- item\n" for level in range(40)) + "\nafter the list",
        "> - " * 12 + "deep\n\nafter both",
        "".join(f"*w{n} " for n in range(20))
        + "x"
        + "".join(f" w{n}*" for n in range(20))
        + "\n\nafter the emphasis",
    ],
    ids=["quotes", "lists", "quotes-in-lists", "emphasis"],
)
def test_nesting_beyond_the_depth_is_plain_text_and_nothing_is_dropped(text: str) -> None:
    assert markup_count(text) <= relay_settings.RENDER_MAX_MARKUP
    rendered = render_agent_text(text)
    assert rendered.plain == PLAIN_DEPTH
    assert tags(rendered.html) <= PLAIN_TAGS
    assert "after" in rendered.html  # the parser would have dropped what follows


def test_nesting_within_the_depth_is_markdown() -> None:
    rendered = render_agent_text("> " * 5 + "quoted\n\n- a\n  - b\n    - c")
    assert rendered.plain == ""
    assert rendered.html.count("<blockquote>") == 5 and rendered.html.count("<ul>") == 3


def test_long_prose_within_the_bounds_is_markdown(settings: Any) -> None:
    text = ("Plain words, **one bold**, and a `code` span.\n\n" * 300)[:N]
    rendered = render_agent_text(text)
    assert rendered.plain == ""
    assert rendered.html.count("<strong>one bold</strong>") == 300


def test_the_bounds_are_settings(settings: Any) -> None:
    text = "*a* " * 100
    assert render_agent_text(text).plain == ""
    settings.RELAYBRIDGE_RENDER_MAX_MARKUP = 100
    assert render_agent_text(text).plain == PLAIN_MARKUP
    settings.RELAYBRIDGE_RENDER_MAX_MARKUP = 10_000
    settings.RELAYBRIDGE_RENDER_MAX_DEPTH = 2
    assert render_agent_text("> > > three").plain == PLAIN_DEPTH
    assert render_agent_text("> > two").plain == ""


def test_a_cut_plain_text_says_so(settings: Any) -> None:
    settings.RELAYBRIDGE_RENDER_MAX_CHARS = 1_000
    rendered = render_agent_text("[" * 50_000)
    assert rendered.plain == PLAIN_MARKUP or len(rendered.html) < 1_200
    assert "shortened for display" in rendered.html and len(rendered.html) < 1_200


def test_the_digest_follows_the_text_and_the_bounds(settings: Any) -> None:
    first = render_digest("hello")
    assert first == render_digest("hello") and first != render_digest("hello!")
    settings.RELAYBRIDGE_RENDER_MAX_MARKUP = 5
    assert render_digest("hello") != first


def test_bad_rendering_and_preview_settings_are_reported(settings: Any) -> None:
    from relaybridge.checks import check_setting_values

    settings.RELAYBRIDGE_RENDER_MAX_DEPTH = 40
    settings.RELAYBRIDGE_PREVIEW_RATE = "lots"
    messages = [message.msg for message in check_setting_values()]
    assert any("RENDER_MAX_DEPTH" in message for message in messages)
    assert any("PREVIEW_RATE" in message for message in messages)
    settings.RELAYBRIDGE_RENDER_MAX_DEPTH = 16
    settings.RELAYBRIDGE_PREVIEW_RATE = "10/s"
    assert check_setting_values() == []
