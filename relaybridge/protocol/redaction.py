"""Blanking Relay tokens and the app token in text: whole, or as it streams.

Sans-I/O: the app token is passed in (``relaybridge.conf.redact`` reads it from the
environment). Two shapes of secret are blanked with ``[redacted]``:

* anything shaped like a Relay token, ``rla_…``/``rlk_…``, also glued to a word
  (``foo_rla_…``, ``xrla_…``): a word boundary is no condition;
* the app token itself, whatever its shape.

Matching looks through the encodings the Markdown renderer decodes into the page:
HTML character references (``&#114;la_…``, ``&#x72;la_…``, ``rla&#95;…``,
``rla&lowbar;…``) and backslash escapes (``rla\\_…``). The text is decoded for
matching only; what is blanked is the whole encoded span in the original text,
and everything else is left exactly as it was.

:class:`StreamRedactor` does the same for text that arrives in pieces: a token can
be split across two deltas, so the trailing fragment of a delta that could be the
start of one is held back until the next delta shows what it is, or the stream ends.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Final

REDACTED: Final = "[redacted]"

#: A Relay token (agent ``rla_`` or app ``rlk_``), wherever it starts. In any case:
#: an error code from Relay is upper-cased, and a token in capitals still tells it.
TOKEN_PATTERN: Final = re.compile(r"rl[ak]_[a-z0-9_\-]+", re.IGNORECASE)

#: The characters a Relay token is made of, and how one starts.
_TOKEN_CHARS: Final = re.compile(r"[a-z0-9_\-]*", re.IGNORECASE)
_TOKEN_HEAD: Final = re.compile(r"rl[ak]_", re.IGNORECASE)
#: What a Relay token starts with, cut short (longest first).
_HEAD_PREFIXES: Final = ("rla", "rlk", "rl", "r")

#: One encoded character: an HTML character reference (the semicolon is optional,
#: as HTML allows for many) or a backslash escape of ASCII punctuation.
_ENCODED: Final = re.compile(
    r"&(?:#[0-9]{1,8}|#[xX][0-9a-fA-F]{1,8}|[A-Za-z][A-Za-z0-9]{1,31});?|\\[!-/:-@\[-`{-~]"
)

#: An encoded character that may not be complete yet, at the very end.
_UNFINISHED: Final = re.compile(r"(?:&[#A-Za-z0-9]{0,40}|\\)\Z")

#: A stream that ends on this much of the app token (or more) has it blanked too:
#: most of a secret is a secret, while a lone letter is just the end of a word.
PARTIAL_TOKEN_MIN: Final = 6

#: The most a stream holds back. Only a run of token characters grows this long (a
#: prefix of the app token or an encoded character is short): it is let out,
#: blanked, when it reaches this, so that no delta makes the stream reread a long
#: held run, and what follows is new text.
MAX_HELD: Final = 1024

#: For each decoded character, where its encoded span starts and ends in the text.
_Spans = tuple[list[int], list[int]]


def _decode(text: str) -> tuple[str, _Spans | None]:
    """``text`` with its encoded characters decoded, and where each one came from.

    The map is None when nothing was encoded (the common case): the offsets agree.
    """
    if "&" not in text and "\\" not in text:
        return text, None
    parts: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    position = 0

    def literal(until: int) -> None:
        parts.append(text[position:until])
        starts.extend(range(position, until))
        ends.extend(range(position + 1, until + 1))

    for match in _ENCODED.finditer(text):
        unit = match.group()
        decoded = unit[1] if unit[0] == "\\" else html.unescape(unit)
        if decoded == unit:  # an unknown entity name: plain text
            continue
        literal(match.start())
        parts.append(decoded)
        starts.extend([match.start()] * len(decoded))
        ends.extend([match.end()] * len(decoded))
        position = match.end()
    literal(len(text))
    return "".join(parts), (starts, ends)


#: A Relay token glued to the end of a word must look like one (``rla_{id}_{random}``):
#: this many characters after its head, an ``_`` and a digit among them. Names like
#: ``carla_smith`` or ``Karla_Schmidt_was_here`` are words, not secrets.
GLUED_TOKEN_MIN: Final = 8
_WORD_CHARACTER: Final = re.compile(r"\w")
_DIGIT: Final = re.compile(r"[0-9]")


def _is_token(decoded: str, match: re.Match[str]) -> bool:
    start = match.start()
    if start == 0 or not _WORD_CHARACTER.match(decoded[start - 1]):
        return True  # at the start of a word: any length, as Relay's tokens vary
    tail = match.group()[4:]
    return len(tail) >= GLUED_TOKEN_MIN and "_" in tail and _DIGIT.search(tail) is not None


def _secret_spans(decoded: str, token: str | None) -> list[tuple[int, int]]:
    """Where ``decoded`` holds a Relay token or the app token, sorted and merged."""
    spans = [
        (match.start(), match.end())
        for match in TOKEN_PATTERN.finditer(decoded)
        if _is_token(decoded, match)
    ]
    if token:
        found = _token_pattern(token).finditer(decoded)
        spans.extend((match.start(1), match.end(1)) for match in found)
    return _merged(spans)


@functools.lru_cache(maxsize=4)
def _token_pattern(token: str) -> re.Pattern[str]:
    # Overlapping occurrences count too; in any case, like Relay tokens.
    return re.compile(f"(?=({re.escape(token)}))", re.IGNORECASE)


def _ends_with_start_of(decoded: str, token: str, shortest: int = 1) -> int:
    """How many characters of ``decoded``'s end could begin ``token`` (0 if none)."""
    for length in range(min(len(token) - 1, len(decoded)), shortest - 1, -1):
        if decoded[len(decoded) - length :].casefold() == token[:length].casefold():
            return length
    return 0


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def redact_text(text: str, token: str | None = None) -> str:
    """``text`` with every Relay token and every ``token`` (the app token) blanked."""
    decoded, origin = _decode(text)
    spans = _secret_spans(decoded, token)
    if not spans:
        return text
    if origin is not None:
        starts, ends = origin
        spans = _merged([(starts[start], ends[end - 1]) for start, end in spans])
    out: list[str] = []
    position = 0
    for start, end in spans:
        out.append(text[position:start])
        out.append(REDACTED)
        position = end
    out.append(text[position:])
    return "".join(out)


def _token_start(decoded: str) -> int:
    """Where a Relay token that may go on, or its start cut short, begins at the end
    of ``decoded``; ``len(decoded)`` if none does.

    Linear: the trailing run of token characters is found from the end (a search
    anchored at the end would retry every position of a long run).
    """
    tail = _TOKEN_CHARS.match(decoded[::-1])
    run = len(tail.group()) if tail is not None else 0
    start = len(decoded) - run
    head = _TOKEN_HEAD.search(decoded, start)
    if head is not None:
        return head.start()
    ending = decoded[-3:].casefold()
    for prefix in _HEAD_PREFIXES:
        if ending.endswith(prefix):
            return len(decoded) - len(prefix)
    return len(decoded)


class StreamRedactor:
    """Redacts a stream of deltas, so that no token shows even when split between them.

    :meth:`feed` returns the redacted text that is safe to show now and holds back
    the trailing fragment that could still become a token: the start of ``rla_``
    (down to a lone ``r``), a token running up to the end (it may go on), a prefix
    of the app token, an encoded character cut short. :meth:`flush` returns the
    held fragment, redacted, at the end of the stream.
    """

    def __init__(self, token: str | None = None) -> None:
        self._token = token or None
        self._held = ""

    @property
    def held(self) -> str:
        """The fragment held back so far (not yet shown)."""
        return self._held

    def feed(self, delta: str) -> str:
        """The redacted text of ``delta`` (and what was held) that may be shown now."""
        text = self._held + delta
        cut = self._safe_end(text)
        if len(text) - cut > MAX_HELD:
            cut = len(text)
        self._held = text[cut:]
        return redact_text(text[:cut], self._token)

    def flush(self) -> str:
        """The held fragment, redacted: the stream has ended.

        A stream that ends partway through the app token (:data:`PARTIAL_TOKEN_MIN`
        characters or more of it) has that part blanked as well.
        """
        text, self._held = self._held, ""
        token = self._token
        if token:
            decoded, origin = _decode(text)
            length = _ends_with_start_of(decoded, token, PARTIAL_TOKEN_MIN)
            if length:
                start = len(decoded) - length
                cut = start if origin is None else origin[0][start]
                return redact_text(text[:cut], token) + REDACTED
        return redact_text(text, token)

    def _safe_end(self, text: str) -> int:
        """How much of ``text`` can be let through: no secret reaches past that point."""
        unfinished = _UNFINISHED.search(text)
        limit = len(text) if unfinished is None else unfinished.start()
        decoded, origin = _decode(text[:limit])
        cut = _token_start(decoded)
        token = self._token
        if token:
            length = _ends_with_start_of(decoded, token)
            if length:
                cut = min(cut, len(decoded) - length)
        # A secret the cut would split is held whole: its first half, blanked on
        # its own, would be followed by the rest in plain text.
        spans = _secret_spans(decoded, token)
        for span_start, span_end in reversed(spans):
            if span_start < cut < span_end:
                cut = span_start
        if cut == len(decoded):
            return limit
        return cut if origin is None else origin[0][cut]
