from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relaybridge.mentions import find_mentions, is_valid_agent_id

KNOWN = ["athena", "klyve", "slow", "Ath", "data-bot", "x_1"]


def mentions(text: str, limit: int = 5) -> list[str]:
    return find_mentions(text, KNOWN, limit)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("@athena summarize this task", ["athena"]),
        ("@athena and @klyve, compare notes", ["athena", "klyve"]),
        ("@Klyve then @ATHENA", ["klyve", "athena"]),
        ("@athena @athena @ATHENA", ["athena"]),
        ("(@athena)", ["athena"]),
        ("thanks @athena.", ["athena"]),
        ("@athena, @klyve: go", ["athena", "klyve"]),
        ("**@athena** and _@klyve_", ["athena", "klyve"]),
        ("# @athena\n\n- @klyve\n\n> @slow", ["athena", "klyve", "slow"]),
        ("line one\n@data-bot line two", ["data-bot"]),
        ("@x_1 hi", ["x_1"]),
        ("@athena's view", ["athena"]),
    ],
)
def test_mentions_in_prose_and_markdown(text: str, expected: list[str]) -> None:
    assert mentions(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "`@athena`",
        "``@athena``",
        "``` `@athena` ```",
        "see `` code @athena `` here",
        "```\n@athena\n```",
        "~~~python\n@athena()\n~~~",
        "    @athena in an indented code block",
        "mail bob@athena.com",
        "bob@athena",
        "é@athena",
        "https://example.com/@athena",
        "<https://example.com/@athena>",
        "www.example.com/@athena",
        "mailto:@athena",
        "[@athena](https://example.com)",
        "![@athena](https://example.com/x.png)",
        "@athena.io is a domain",
        "@athena@example.social",
        "\\@athena escaped",
        "&commat;athena",
        "@athenabot",
        "@athena_",
        "@athena-x",
        "@unknown",
    ],
)
def test_no_mention(text: str) -> None:
    assert mentions(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "@\u0430thena",  # Cyrillic a
        "@ath\u0435na",  # Cyrillic e: must not become "Ath"
        "@ath\u200bena",  # zero-width space
        "@ath\u200dena",  # zero-width joiner
        "@\u200bathena",
        "@athena\u0332",  # combining underline on the last letter
        "@ath\u00e9na",
    ],
)
def test_lookalikes_and_invisible_characters_do_not_match(text: str) -> None:
    assert mentions(text) == []


def test_compatibility_forms_are_normalised() -> None:
    assert mentions("\uff20\uff41\uff54\uff48\uff45\uff4e\uff41 hi") == ["athena"]


def test_limit_and_order() -> None:
    text = "@slow @klyve @athena @data-bot @x_1 @Ath"
    assert mentions(text, limit=3) == ["slow", "klyve", "athena"]
    assert mentions(text, limit=0) == []
    assert len(mentions(text, limit=5)) == 5


def test_only_known_ids_and_their_canonical_spelling() -> None:
    assert find_mentions("@ATHENA", ["Athena"], 5) == ["Athena"]
    assert find_mentions("@athena", [], 5) == []
    assert find_mentions("@athena", ["ath ena", "athena!"], 5) == []


def test_agent_id_grammar() -> None:
    assert is_valid_agent_id("athena")
    assert is_valid_agent_id("a-b_c9")
    assert not is_valid_agent_id("-athena")
    assert not is_valid_agent_id("ath\u0435na")
    assert not is_valid_agent_id("")


def test_mentions_after_a_long_comment_are_bounded() -> None:
    text = "word " * 50_000 + "@athena"
    assert mentions(text) == []
    assert mentions("@klyve " + text) == ["klyve"]


agent_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,8}", fullmatch=True)
texty = st.text(
    alphabet=st.sampled_from(list("@`*_[]()<>!\\#>- \n.:/abcdeKATHENA\u0430\u200b\uff20"))
    | st.characters(),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(text=texty, known=st.lists(agent_ids, max_size=6), limit=st.integers(-1, 6))
def test_never_raises_never_unknown_never_over_limit(
    text: str, known: list[str], limit: int
) -> None:
    found = find_mentions(text, known, limit)
    assert len(found) <= max(limit, 0)
    assert set(found) <= set(known)
    assert len(found) == len(set(found))


@settings(max_examples=200, deadline=None)
@given(
    known=st.lists(agent_ids, min_size=1, max_size=4, unique_by=str.lower),
    prefix=st.sampled_from(["", " ", "hi ", "\n", "("]),
    data=st.data(),
)
def test_plain_mentions_are_found(known: list[str], prefix: str, data: st.DataObject) -> None:
    chosen = data.draw(st.sampled_from(known))
    assert find_mentions(f"{prefix}@{chosen} please", known, 5) == [chosen]
