"""Finding ``@agent_id`` mentions in a comment.

A mention is ``@`` followed by an agent id (``[A-Za-z0-9][A-Za-z0-9_-]*``, matched
case-insensitively against the known ids) in the prose of a comment, read as
CommonMark. These never mention:

* anything inside a fenced or indented code block or an inline code span (any
  number of backticks), inside a link's text or an image;
* an escaped ``\\@`` (and ``&commat;``);
* e-mail addresses (``bob@athena.io``), URLs (``https://x.io/@athena``), handles
  (``@athena@host``) and domains (``@athena.io``);
* an id that continues with a non-ASCII letter, digit, combining mark or invisible
  character: the text is NFKC-normalised first, and look-alike letters (Cyrillic
  U+0430 for ``a``) or zero-width characters never turn into a different, known id.

Only known ids count, each once, in order of first appearance, and at most
``limit``. :func:`find_mentions` is pure; callers pass the known ids (see
:func:`relaybridge.agents.known_agent_ids`).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Iterator
from typing import Final

from markdown_it import MarkdownIt
from markdown_it.token import Token

AGENT_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
#: Comments longer than this are only scanned up to here: mentions belong at the
#: start of a request, and the parser's cost should not grow without bound.
MAX_SCAN_CHARS: Final = 100_000

_MENTION: Final = re.compile(r"@([A-Za-z0-9][A-Za-z0-9_-]*)")
_URL: Final = re.compile(r"(?i)(?:\b[a-z][a-z0-9+.\-]*://|\bwww\.|\bmailto:)[^\s<>]*")
# Characters that, right before the "@", make it part of an address, URL or word.
_BLOCKING_BEFORE: Final = frozenset("_.+-/@:=&%\\`~#")
# Escapes and entities stand for themselves; an escaped "@" must not start a mention.
_ESCAPED_AT: Final = "_"

# Raw HTML off: tags are text here and in rendering. Escapes stay separate tokens
# (text_join off) so that "\@athena" is recognisable as escaped.
_md = MarkdownIt("commonmark", {"html": False}).disable("text_join")


def is_valid_agent_id(value: str) -> bool:
    """True for an ASCII agent id relaybridge can mention."""
    return AGENT_ID_PATTERN.fullmatch(value) is not None


def find_mentions(text: str, known_agent_ids: Iterable[str], limit: int) -> list[str]:
    """The known agents ``text`` mentions: each once, in order, at most ``limit``."""
    if limit <= 0:
        return []
    # Normalise before parsing so that compatibility forms (fullwidth U+FF20 "@",
    # U+FF40 "`") mean exactly what their ASCII equivalents mean.
    normalised = unicodedata.normalize("NFKC", text[:MAX_SCAN_CHARS])
    if "@" not in normalised:
        return []
    known: dict[str, str] = {}
    for agent_id in known_agent_ids:
        if is_valid_agent_id(agent_id):
            known.setdefault(agent_id.lower(), agent_id)
    if not known:
        return []

    found: list[str] = []
    for segment in _prose_segments(normalised):
        for candidate in _candidates(segment):
            match = known.get(candidate.lower())
            if match is not None and match not in found:
                found.append(match)
                if len(found) >= limit:
                    return found
    return found


def _prose_segments(text: str) -> Iterator[str]:
    """The prose of each inline run of ``text``, with code, links and escapes blanked."""
    for token in _md.parse(text):
        if token.type == "inline" and token.children:
            yield _inline_prose(token.children)


def _inline_prose(children: list[Token]) -> str:
    parts: list[str] = []
    link_depth = 0
    for child in children:
        if child.type == "link_open":
            link_depth += 1
        elif child.type == "link_close":
            link_depth = max(0, link_depth - 1)
        elif link_depth:
            continue
        elif child.type == "text":
            parts.append(child.content)
            continue
        elif child.type == "text_special":
            parts.append(_ESCAPED_AT if "@" in child.content else " ")
            continue
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
            continue
        # Code spans, images, emphasis markers: a neutral boundary.
        parts.append(" ")
    return "".join(parts)


def _candidates(segment: str) -> Iterator[str]:
    cleaned = _URL.sub(lambda match: " " * len(match.group(0)), segment)
    for match in _MENTION.finditer(cleaned):
        start, end = match.span()
        if start > 0 and _blocks_before(cleaned[start - 1]):
            continue
        if end < len(cleaned) and _blocks_after(cleaned, end):
            continue
        yield match.group(1)


def _blocks_before(char: str) -> bool:
    return char in _BLOCKING_BEFORE or unicodedata.category(char)[0] in "LNM"


def _blocks_after(text: str, index: int) -> bool:
    char = text[index]
    if char == "@":
        return True  # a handle such as @athena@example.social
    if char == "." and index + 1 < len(text) and text[index + 1].isalnum():
        return True  # a domain such as @athena.io
    category = unicodedata.category(char)
    # A letter, digit or mark (e.g. Cyrillic or accented) or an invisible format
    # character means the id goes on beyond ASCII: not the id we matched.
    return category[0] in "LNM" or category == "Cf"
