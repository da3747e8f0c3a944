"""Frames are frozen values whose JSON content is deep-frozen and validated."""

from __future__ import annotations

import dataclasses
import datetime
import json
from types import MappingProxyType
from typing import Any

import pytest

from relaybridge.protocol import (
    AgentEvent,
    AgentInfo,
    AgentReply,
    Agents,
    Event,
    PayloadTooLarge,
    ProtocolError,
    Reply,
    ReplyMetadata,
    Token,
    Unknown,
    check_payload_size,
    payload_size,
    serialize,
    thaw_json,
)
from relaybridge.protocol.jsonvalue import MAX_JSON_DEPTH, freeze_json


def test_frames_are_frozen() -> None:
    frame = Token("e", "a", "x")
    with pytest.raises(dataclasses.FrozenInstanceError):
        frame.token = "y"  # type: ignore[misc]


def test_frames_have_slots() -> None:
    assert not hasattr(Token("e", "a", "x"), "__dict__")


def test_payload_is_deep_frozen_and_detached_from_the_caller() -> None:
    payload: dict[str, Any] = {"comments": [{"author": "ana", "text": "hi"}], "n": 1}
    event = Event("athena", "task-1", payload)
    payload["n"] = 2
    payload["comments"][0]["text"] = "changed"
    assert event.payload["n"] == 1
    assert event.payload["comments"][0]["text"] == "hi"
    assert isinstance(event.payload, MappingProxyType)
    assert isinstance(event.payload["comments"], tuple)
    with pytest.raises(TypeError):
        event.payload["n"] = 3  # type: ignore[index]
    with pytest.raises(TypeError):
        event.payload["comments"][0]["text"] = "x"


def test_frozen_payload_equals_the_plain_one() -> None:
    payload = {"a": [1, {"b": None}], "c": True}
    assert Event("x", "t", payload) == Event("x", "t", dict(payload))
    assert thaw_json(Event("x", "t", payload).payload) == payload


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"when": datetime.date(2024, 1, 1)}, "holds a date"),
        ({1: "x"}, "key that is not a string"),
        ({"x": float("nan")}, "not finite"),
        ({"x": float("inf")}, "not finite"),
        ({"x": {1, 2}}, "holds a set"),
    ],
)
def test_non_json_payloads_are_refused_at_construction(payload: Any, reason: str) -> None:
    with pytest.raises(ProtocolError) as caught:
        Event("athena", "t", payload)
    assert reason in caught.value.reason
    assert "Event.payload" in caught.value.reason


def test_payload_must_be_an_object() -> None:
    with pytest.raises(ProtocolError):
        AgentEvent("e", "p", "t", "relay:p:t", ["not", "an", "object"])  # type: ignore[arg-type]


def test_depth_is_bounded() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_JSON_DEPTH):
        deep = [deep]
    freeze_json(deep)  # exactly at the bound: fine
    with pytest.raises(ProtocolError):
        freeze_json([deep])


def test_metadata_extra_cannot_shadow_a_set_field() -> None:
    with pytest.raises(ProtocolError):
        ReplyMetadata(model="m", extra={"model": "other"})
    # A wrongly typed known key parked in extra is fine while the field is unset.
    assert ReplyMetadata(extra={"model": 3}).extra["model"] == 3


def test_metadata_with_fields_replaces_a_malformed_extra() -> None:
    metadata = ReplyMetadata(tokens_used=5, extra={"session_key": 7, "cost": 1})
    rewritten = metadata.with_fields(session_key="relay:a:p:t")
    assert rewritten == ReplyMetadata(tokens_used=5, session_key="relay:a:p:t", extra={"cost": 1})
    assert metadata.session_key is None  # the original is unchanged
    with pytest.raises(TypeError):
        metadata.with_fields(colour="blue")


def test_unknown_data_cannot_contain_type() -> None:
    with pytest.raises(ProtocolError):
        Unknown("x", {"type": "y"})


def test_agents_are_stored_as_a_tuple() -> None:
    frame = Agents([AgentInfo("a", "A")])  # type: ignore[arg-type]
    assert frame.agents == (AgentInfo("a", "A", ""),)


def test_defaults() -> None:
    reply = Reply("e", "a", "t", "text")
    assert reply.metadata == ReplyMetadata() and reply.done is None and dict(reply.payload) == {}
    assert AgentReply("e", "c").metadata == ReplyMetadata()


def test_type_names() -> None:
    assert (Event.type, AgentEvent.type, Token.type, Unknown("custom").type) == (
        "event",
        "event",
        "token",
        "custom",
    )


def test_payload_size_accepts_frozen_payloads_and_measures_like_relay() -> None:
    payload = {"message": "café", "comments": [{"a": 1}]}
    event = Event("a", "t", payload)
    assert payload_size(event.payload) == len(json.dumps(payload).encode("utf-8"))
    assert check_payload_size(event.payload) == payload_size(payload)


def test_payload_limit_is_65536_bytes() -> None:
    overhead = payload_size({"m": ""})
    fits = {"m": "x" * (65_536 - overhead)}
    assert check_payload_size(fits) == 65_536
    with pytest.raises(PayloadTooLarge) as caught:
        check_payload_size({"m": "x" * (65_537 - overhead)})
    assert caught.value.size == 65_537


def test_serialize_of_a_frozen_payload_is_plain_json() -> None:
    text = serialize(Event("a", "t", {"list": [1, 2], "obj": {"k": "v"}}))
    assert json.loads(text)["payload"] == {"list": [1, 2], "obj": {"k": "v"}}
