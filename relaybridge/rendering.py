"""Agent text as HTML: Markdown rendered, then sanitized with an allow-list.

Only the final, saved reply is rendered; streamed text is shown as text. Raw HTML
in the Markdown is not interpreted, and the sanitizer runs anyway, so nothing but
the allowed tags survives: no scripts, event handlers, styles, ``javascript:``
links, or images of any kind (a remote image would tell a third party who read
the page). Links keep only ``href`` with http, https or mailto, and get
``rel="nofollow noopener noreferrer"``.

The parser's cost is bounded. It grows with the text's length, but mostly with
its markup: each ``[``, ``*``, ``_``, backtick, ``|``, line break and the like
costs the parser some fifty times what a letter does. A text is rendered as
Markdown only while it holds at most ``RELAYBRIDGE_RENDER_MAX_MARKUP`` such
characters and its blocks nest at most ``RELAYBRIDGE_RENDER_MAX_DEPTH`` deep
(quotes in lists in quotes...; the parser itself drops whatever lies deeper);
beyond either it is shown as escaped plain text, paragraphs and line breaks kept.
Every text is first cut at ``RELAYBRIDGE_RENDER_MAX_CHARS``.

A saved reply is rendered once, when it is saved, and its HTML kept on its run
(:mod:`relaybridge.rendered`); pages reuse that copy.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

import nh3
from django.utils.html import linebreaks
from markdown_it import MarkdownIt

from .conf import relay_settings

ALLOWED_TAGS: Final = frozenset(
    {
        "p", "br", "hr", "strong", "em", "del", "code", "pre", "blockquote",
        "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "a",
        "table", "thead", "tbody", "tr", "th", "td",
    }
)  # fmt: skip
ALLOWED_ATTRIBUTES: Final = {"a": {"href"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}}
URL_SCHEMES: Final = frozenset({"http", "https", "mailto"})
LINK_REL: Final = "nofollow noopener noreferrer"
TRUNCATION_NOTE: Final = "\n\n*(shortened for display)*"
PLAIN_TRUNCATION_NOTE: Final = "\n\n(shortened for display)"
#: Characters that cost the Markdown parser work (delimiters, brackets, line starts).
MARKUP_CHARACTERS: Final = "[]()*_~`|<>!&\\\n#"
#: The parser's own nesting ceiling; RELAYBRIDGE_RENDER_MAX_DEPTH must stay below it.
PARSER_MAX_NESTING: Final = 20
#: Changes whenever the same text would render differently: stored copies made
#: before are then rendered again (see :func:`render_digest`).
RENDER_VERSION: Final = "1"

#: Why a text was shown as plain text rather than Markdown.
PLAIN_MARKUP: Final = "markup"
PLAIN_DEPTH: Final = "depth"

_md = MarkdownIt("commonmark", {"html": False, "maxNesting": PARSER_MAX_NESTING}).enable(
    ["table", "strikethrough"]
)
_CONTAINERS: Final = frozenset(
    f"{kind}_{edge}"
    for kind in ("blockquote", "bullet_list", "ordered_list")
    for edge in ("open", "close")
)
_MARKUP_TABLE: Final = {ord(char): None for char in MARKUP_CHARACTERS}


@dataclass(frozen=True)
class Rendered:
    """Sanitized ``html``, and ``plain``: why the text was not rendered as Markdown ("")."""

    html: str
    plain: str = ""


def markup_count(text: str) -> int:
    """How many of ``text``'s characters cost the parser work (one C-speed pass)."""
    return len(text) - len(text.translate(_MARKUP_TABLE))


def _depth(tokens: list[Any]) -> int:
    """How deep the parsed text nests: quotes and lists, plus emphasis and links inside.

    ``PARSER_MAX_NESTING`` when the parser reached its own ceiling (and so dropped
    whatever lay deeper).
    """
    deepest = containers = 0
    for token in tokens:
        if token.type in _CONTAINERS:
            containers += token.nesting
        inline = 0
        for child in token.children or ():
            if child.level >= PARSER_MAX_NESTING - 1:
                return PARSER_MAX_NESTING
            if child.nesting == 1:
                inline = max(inline, child.level + 1)
        if token.level >= PARSER_MAX_NESTING - 1:
            return PARSER_MAX_NESTING
        deepest = max(deepest, containers + inline)
    return deepest


def _clean(html: str) -> str:
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )


def render_agent_text(text: str) -> Rendered:
    """``text`` as sanitized HTML: Markdown within the bounds, escaped plain text beyond."""
    limit = relay_settings.RENDER_MAX_CHARS
    cut = len(text) > limit
    body = text[:limit] if cut else text
    if markup_count(body) > relay_settings.RENDER_MAX_MARKUP:
        return _plain(body, cut, PLAIN_MARKUP)
    env: dict[str, Any] = {}
    tokens = _md.parse(body + TRUNCATION_NOTE if cut else body, env)
    if _depth(tokens) > relay_settings.RENDER_MAX_DEPTH:
        return _plain(body, cut, PLAIN_DEPTH)
    return Rendered(_clean(_md.renderer.render(tokens, _md.options, env)))


def _plain(text: str, cut: bool, reason: str) -> Rendered:
    if cut:
        text += PLAIN_TRUNCATION_NOTE
    return Rendered(_clean(linebreaks(text, autoescape=True)), reason)


def render_agent_markdown(text: str) -> str:
    """Sanitized HTML for an agent's Markdown ``text`` (bounded: see the module's notes)."""
    return render_agent_text(text).html


def render_digest(text: str) -> str:
    """A digest of ``text`` and of everything that shapes its HTML (bounds, version).

    A stored rendering whose digest differs is out of date: the text was edited, a
    bound changed, or this module renders differently now.
    """
    shape = (
        f"{RENDER_VERSION}:{relay_settings.RENDER_MAX_CHARS}:"
        f"{relay_settings.RENDER_MAX_MARKUP}:{relay_settings.RENDER_MAX_DEPTH}:"
    )
    return hashlib.sha256((shape + text).encode("utf-8", "surrogatepass")).hexdigest()
