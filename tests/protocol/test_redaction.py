"""Tokens are blanked however they are spelled, and however a stream splits them."""

from __future__ import annotations

import itertools
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relaybridge.protocol.redaction import MAX_HELD, StreamRedactor, redact_text
from relaybridge.rendering import render_agent_markdown

APP_TOKEN = "Zq9-app-s3cret.Kv2"
AGENT_TOKEN = "rla_athena_4f9c2b7d1e8a6c3b"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("use rla_athena_4f9c and go", "use [redacted] and go"),
        ("use rlk_portal_93be.", "use [redacted]."),
        # Glued to a word: no word boundary needed.
        ("foo_rla_athena_4f9c x", "foo_[redacted] x"),
        ("xrla_athena_4f9c x", "x[redacted] x"),
        ("(rla_a)", "([redacted])"),
        # Upper-cased, as an error code from Relay is.
        ("code RLA_ATHENA_4F9C", "code [redacted]"),
        # Entity-encoded: the whole encoded span is blanked.
        ("see &#114;la_athena_4f9c now", "see [redacted] now"),
        ("see &#x72;la_athena_4f9c now", "see [redacted] now"),
        ("see &#X72;la_athena_4f9c now", "see [redacted] now"),
        ("see rla&#95;athena_4f9c now", "see [redacted] now"),
        ("see rla&lowbar;athena&#x5f;4f9c now", "see [redacted] now"),
        ("see &#114&#108&#97&#95x now", "see [redacted] now"),
        ("see rla\\_athena\\_4f9c now", "see [redacted] now"),
        ("see rla_ath&#101;na&#59; now", "see [redacted]&#59; now"),
        # Everything else is left exactly as it was.
        ("a &amp; b &lt;rl&gt; &#114; \\* r la_x &nosuch; rl_a", None),
        ("", None),
        # Glued to a word, only what looks like a token (``_{random}`` with a digit):
        # names ending in "rla_" or "rlk_" are words.
        ("carla_smith and Karla_Schmidt_was_here", None),
        ("perla_notes_on_the_plan", None),
        ("CARLA_SMITH_2", None),
    ],
)
def test_relay_tokens_are_blanked_in_every_spelling(text: str, expected: str | None) -> None:
    assert redact_text(text) == (text if expected is None else expected)


@pytest.mark.parametrize(
    "text",
    [
        f"the token {APP_TOKEN} here",
        f"glued{APP_TOKEN}glued",
        f"upper-cased {APP_TOKEN.upper()}",
        "the token &#90;q9-app-s3cret&#46;Kv2 here",
        "the token Zq9-app-s3cret\\.Kv2 here",
    ],
)
def test_the_app_token_is_blanked_in_every_spelling(text: str) -> None:
    redacted = redact_text(text, APP_TOKEN)
    assert "[redacted]" in redacted
    assert APP_TOKEN not in render_agent_markdown(redacted)
    assert "s3cret" not in redacted.casefold()


@pytest.mark.parametrize(
    "text",
    [
        "&#114;la_athena_4f9c2b",
        "&#x72;la_athena_4f9c2b",
        "rla&#95;athena_4f9c2b",
        "rla\\_athena\\_4f9c2b",
        "foo_rla_athena_4f9c2b",
    ],
)
def test_what_the_renderer_decodes_never_shows_a_token(text: str) -> None:
    # Unredacted, the page shows the token; redacted, it does not.
    assert "rla_athena_4f9c2b" in render_agent_markdown(text)
    assert "rla_" not in render_agent_markdown(redact_text(text))


def _stream(deltas: list[str], token: str | None = APP_TOKEN) -> tuple[list[str], str]:
    redactor = StreamRedactor(token)
    shown = [redactor.feed(delta) for delta in deltas]
    return shown, redactor.flush()


@pytest.mark.parametrize(
    "deltas",
    [
        ["key: Zq9-app", "-s3cret.Kv2 done"],
        ["key: Z", "q9-app-s3cret.Kv", "2 done"],
        ["key: rla_athe", "na_4f9c2b7d1e8a6c3b done"],
        ["key: r", "l", "a", "_", "athena_4f9c2b7d1e8a6c3b", " done"],
        ["key: rl", "a_athena_4f9c2b7d1e8a6c3b done"],
        ["key: &#1", "14;la_athena_4f9c2b7d1e8a6c3b done"],
        ["key: &#x7", "2;la_athena_4f9c2b7d1e8a6c3b done"],
        ["key: rla&", "#95;athena_4f9c2b7d1e8a6c3b done"],
        ["key: rla\\", "_athena_4f9c2b7d1e8a6c3b done"],
        ["key: [redacted", "] done"],
    ],
)
def test_a_token_split_across_deltas_never_shows(deltas: list[str]) -> None:
    shown, tail = _stream(deltas)
    text = "".join(shown) + tail
    assert text == "key: [redacted] done", shown
    for part in shown:
        assert "s3cret" not in part and "4f9c" not in part


def test_a_token_glued_to_a_word_is_blanked_across_deltas() -> None:
    shown, tail = _stream(["key: foo_rl", "a_athena_4f9c2b", "7d1e8a6c3b done"])
    assert shown[0] == "key: foo_"
    assert "".join(shown) + tail == "key: foo_[redacted] done"


def test_a_fragment_is_held_only_while_it_could_start_a_token() -> None:
    redactor = StreamRedactor(APP_TOKEN)
    assert redactor.feed("for a letter") == "for a lette"
    assert redactor.held == "r"
    assert redactor.feed(" more") == "r more"
    assert redactor.feed("Zq9") == ""
    assert redactor.feed("!") == "Zq9!"
    assert redactor.feed("a &amp; b &") == "a &amp; b "
    assert redactor.feed("amp; c") == "&amp; c"
    assert redactor.held == ""


def test_a_token_reaching_the_end_is_held_until_it_ends() -> None:
    redactor = StreamRedactor()
    assert redactor.feed("it is rla_abc") == "it is "
    assert redactor.feed("def") == ""
    assert redactor.held == "rla_abcdef"
    # The end of the stream flushes what is held, redacted.
    assert redactor.flush() == "[redacted]"
    assert redactor.flush() == ""


def test_a_stream_that_ends_partway_through_the_app_token_blanks_that_part() -> None:
    shown, tail = _stream(["so far Zq9-app-s3", "cret.Kv"])
    assert (shown, tail) == (["so far ", ""], "[redacted]")
    shown, tail = _stream(["so far &#90;q9-ap"])
    assert (shown, tail) == (["so far "], "[redacted]")
    # A few characters are no secret: the end of a word stays as it was.
    assert _stream(["see Zq9-a"]) == (["see "], "Zq9-a")
    assert _stream(["see Zq9-a"], token=None) == (["see Zq9-a"], "")


def test_a_secret_the_cut_would_split_is_held_whole() -> None:
    # "rla_xab" ends at the ".", but "ab.c" may be the start of the app token: the
    # cut falls inside the Relay token, so the whole token waits.
    redactor = StreamRedactor("ab.cd")
    assert redactor.feed("see rla_xab.c") == "see "
    assert redactor.feed("zz") == "[redacted].czz"


@given(
    prefix=st.text(alphabet="ab rl_&#;x\\", max_size=12),
    suffix=st.text(alphabet="ab rl_&#;x\\", max_size=12),
    spelling=st.sampled_from(
        [AGENT_TOKEN, APP_TOKEN, "&#114;la_athena_4f9c2b7d1e8a6c3b", "rla&#95;athena_4f9c2b7d"]
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=60), max_size=6),
)
def test_however_a_stream_is_cut_no_delta_shows_a_secret(
    prefix: str, suffix: str, spelling: str, cuts: list[int]
) -> None:
    text = f"{prefix} {spelling} {suffix}"
    points = sorted({min(cut, len(text)) for cut in cuts} | {0, len(text)})
    deltas = [text[start:end] for start, end in itertools.pairwise(points)]
    shown, tail = _stream(deltas)
    for part in [*shown, tail]:
        assert "4f9c" not in part and "s3cret" not in part
    # Cut anywhere, the stream shows what the whole text redacted shows.
    assert "".join(shown) + tail == redact_text(text, APP_TOKEN)


def test_a_long_run_of_token_heads_is_redacted_in_linear_time() -> None:
    # A search anchored at the end retried every "r" of the run: 64 KB took seconds,
    # with the worker's event loop blocked meanwhile.
    hostile = "rla_" * 16_000 + " x"
    started = time.perf_counter()
    assert StreamRedactor(APP_TOKEN).feed(hostile) == "[redacted] x"
    assert redact_text("&#114;la_x " * 16_000, APP_TOKEN) == "[redacted] " * 16_000
    assert time.perf_counter() - started < 2.0


def test_what_is_held_is_bounded() -> None:
    redactor = StreamRedactor(APP_TOKEN)
    assert redactor.feed("see rla_") == "see "
    shown = [redactor.feed("a" * 100) for _ in range(10)]
    # Held while it could be one token; let out, blanked, past MAX_HELD characters.
    assert shown == [""] * 10
    assert len(redactor.held) == 1004 <= MAX_HELD
    assert redactor.feed("a" * 100) == "[redacted]"
    assert redactor.held == ""
    assert redactor.feed("aa done") == "aa done"
