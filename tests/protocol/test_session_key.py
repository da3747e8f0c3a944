"""Session keys split with bounded splits: thread ids may contain ':'."""

from __future__ import annotations

import pytest

from relaybridge.protocol import (
    AgentSessionKey,
    ProtocolError,
    SessionKey,
    format_agent_session_key,
    format_session_key,
    parse_agent_session_key,
    parse_session_key,
)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("relay:athena:portal:task-123", SessionKey("athena", "portal", "task-123")),
        ("relay:athena:portal:a:b:c", SessionKey("athena", "portal", "a:b:c")),
        ("relay:athena:portal::", SessionKey("athena", "portal", ":")),
        ("relay:my_agent:my_app:task_1", SessionKey("my_agent", "my_app", "task_1")),
        ("relay:a:p:spaces are fine", SessionKey("a", "p", "spaces are fine")),
    ],
)
def test_app_side_keys(key: str, expected: SessionKey) -> None:
    assert parse_session_key(key) == expected
    assert str(expected) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "relay",
        "relay:athena",
        "relay:athena:portal",
        "relay:athena:portal:",
        "relay::portal:t",
        "relay:athena::t",
        "Relay:athena:portal:t",
        "slack:athena:portal:t",
        ":athena:portal:t",
    ],
)
def test_bad_app_side_keys(key: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse_session_key(key)
    assert "relay:{agent_id}:{app_id}:{thread_id}" in caught.value.reason


def test_non_string_key() -> None:
    with pytest.raises(ProtocolError):
        parse_session_key(None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("relay:portal:task-123", AgentSessionKey("portal", "task-123")),
        ("relay:portal:a:b", AgentSessionKey("portal", "a:b")),
    ],
)
def test_agent_side_keys(key: str, expected: AgentSessionKey) -> None:
    assert parse_agent_session_key(key) == expected
    assert str(expected) == key


@pytest.mark.parametrize("key", ["relay:portal", "relay::t", "relay:portal:", "x:portal:t"])
def test_bad_agent_side_keys(key: str) -> None:
    with pytest.raises(ProtocolError):
        parse_agent_session_key(key)


def test_an_app_side_key_read_as_agent_side_keeps_the_rest_in_the_thread() -> None:
    # The shapes are told apart by where they come from, never by guessing.
    assert parse_agent_session_key("relay:athena:portal:t") == AgentSessionKey("athena", "portal:t")


def test_format_refuses_ids_that_would_not_split_back() -> None:
    with pytest.raises(ProtocolError):
        format_session_key("ath:ena", "portal", "t")
    with pytest.raises(ProtocolError):
        format_session_key("athena", "por:tal", "t")
    with pytest.raises(ProtocolError):
        format_session_key("athena", "portal", "")
    with pytest.raises(ProtocolError):
        format_agent_session_key("", "t")
    with pytest.raises(ProtocolError):
        format_agent_session_key("p", "")
    assert format_session_key("a", "p", "x:y") == "relay:a:p:x:y"
    assert format_agent_session_key("p", "x:y") == "relay:p:x:y"
