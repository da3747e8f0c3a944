"""Agent text as HTML: Markdown rendered, then sanitized with an allow-list.

Only the final, saved reply is rendered; streamed text is shown as text. Raw HTML
in the Markdown is not interpreted, and the sanitizer runs anyway, so nothing but
the allowed tags survives: no scripts, event handlers, styles, ``javascript:``
links, or images of any kind (a remote image would tell a third party who read
the page). Links keep only ``href`` with http, https or mailto, and get
``rel="nofollow noopener noreferrer"``.
"""

from __future__ import annotations

from typing import Final

import nh3
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

_md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])


def render_agent_markdown(text: str) -> str:
    """Sanitized HTML for an agent's Markdown ``text`` (cut at ``RELAYBRIDGE_RENDER_MAX_CHARS``)."""
    limit = relay_settings.RENDER_MAX_CHARS
    if len(text) > limit:
        text = text[:limit] + TRUNCATION_NOTE
    html = _md.render(text)
    return nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        attributes={tag: set(names) for tag, names in ALLOWED_ATTRIBUTES.items()},
        url_schemes=set(URL_SCHEMES),
        link_rel=LINK_REL,
        strip_comments=True,
    )
