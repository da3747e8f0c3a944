"""parse and serialize: every frame, every documented variant, every way to be wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from relaybridge.protocol import (
    Accepted,
    AgentError,
    AgentEvent,
    AgentInfo,
    AgentReply,
    Agents,
    AgentToken,
    Discover,
    Error,
    Event,
    Frame,
    Ping,
    Pong,
    ProtocolError,
    Reply,
    ReplyMetadata,
    Source,
    Token,
    Unknown,
    parse,
    serialize,
    thaw_json,
    to_json,
)

R2A, A2R = Source.RELAY_TO_APP, Source.APP_TO_RELAY
R2AG, AG2R = Source.RELAY_TO_AGENT, Source.AGENT_TO_RELAY

PAYLOAD = {
    "event": "comment.mention",
    "message": "@athena summarize this task",
    "task_id": "task-123",
    "task_title": "Q2 Roadmap Review",
}
METADATA = {
    "tokens_used": 1500,
    "model": "claude-sonnet",
    "latency_ms": 2300,
    "session_key": "relay:athena:portal:task-123",
}

# (source, the documented example as a dict, the frame it must become)
CANONICAL: list[tuple[Source, dict[str, Any], Frame]] = [
    (
        A2R,
        {"type": "event", "agent_id": "athena", "thread_id": "task-123", "payload": PAYLOAD},
        Event("athena", "task-123", PAYLOAD),
    ),
    (A2R, {"type": "discover"}, Discover()),
    (A2R, {"type": "ping"}, Ping()),
    (A2R, {"type": "pong"}, Pong()),
    (
        R2A,
        {
            "type": "accepted",
            "event_id": "evt_k9p2m",
            "agent_id": "athena",
            "session_key": "relay:athena:portal:task-123",
            "status": "accepted",
        },
        Accepted("evt_k9p2m", "athena", "relay:athena:portal:task-123", "accepted"),
    ),
    (
        R2A,
        {
            "type": "agents",
            "agents": [{"agent_id": "athena", "name": "Athena", "description": "Personal EA"}],
        },
        Agents((AgentInfo("athena", "Athena", "Personal EA"),)),
    ),
    (
        R2A,
        {"type": "token", "event_id": "evt_k9p2m", "agent_id": "athena", "token": " the"},
        Token("evt_k9p2m", "athena", " the"),
    ),
    (
        R2A,
        {
            "type": "reply",
            "event_id": "evt_k9p2m",
            "agent_id": "athena",
            "thread_id": "task-123",
            "reply": "Full text…",
            "payload": PAYLOAD,
            "metadata": METADATA,
        },
        Reply(
            "evt_k9p2m",
            "athena",
            "task-123",
            "Full text…",
            PAYLOAD,
            ReplyMetadata(1500, "claude-sonnet", 2300, "relay:athena:portal:task-123"),
        ),
    ),
    (
        R2A,
        {
            "type": "error",
            "event_id": "evt_k9p2m",
            "agent_id": "athena",
            "error": "Agent not connected",
            "code": "AGENT_OFFLINE",
        },
        Error("evt_k9p2m", "athena", "Agent not connected", "AGENT_OFFLINE"),
    ),
    (
        R2A,
        {
            "type": "error",
            "event_id": None,
            "agent_id": None,
            "error": "Invalid or revoked token",
            "code": "UNAUTHORIZED",
        },
        Error(None, None, "Invalid or revoked token", "UNAUTHORIZED"),
    ),
    (R2A, {"type": "ping"}, Ping()),
    (R2A, {"type": "pong"}, Pong()),
    (
        R2AG,
        {
            "type": "event",
            "event_id": "evt_k9p2m",
            "app_id": "portal",
            "thread_id": "task-123",
            "session_key": "relay:portal:task-123",
            "payload": PAYLOAD,
        },
        AgentEvent("evt_k9p2m", "portal", "task-123", "relay:portal:task-123", PAYLOAD),
    ),
    (R2AG, {"type": "ping"}, Ping()),
    (
        AG2R,
        {"type": "token", "event_id": "evt_k9p2m", "token": "Hello"},
        AgentToken("evt_k9p2m", "Hello"),
    ),
    (
        AG2R,
        {"type": "reply", "event_id": "evt_k9p2m", "content": "Hi", "metadata": {"model": "m"}},
        AgentReply("evt_k9p2m", "Hi", ReplyMetadata(model="m")),
    ),
    (
        AG2R,
        {
            "type": "reply",
            "event_id": "evt_k9p2m",
            "content": "Hi",
            "metadata": {},
            "done": True,
        },
        AgentReply("evt_k9p2m", "Hi", ReplyMetadata(), True),
    ),
    (
        AG2R,
        {"type": "error", "event_id": "evt_k9p2m", "error": "boom", "code": "AGENT_ERROR"},
        AgentError("evt_k9p2m", "boom", "AGENT_ERROR"),
    ),
    (AG2R, {"type": "pong"}, Pong()),
]
IDS = [f"{source.value}:{data['type']}" for source, data, _ in CANONICAL]


def compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


@pytest.mark.parametrize(("source", "data", "frame"), CANONICAL, ids=IDS)
def test_documented_example_parses_to_its_frame(
    source: Source, data: dict[str, Any], frame: Frame
) -> None:
    assert parse(json.dumps(data), source=source) == frame


@pytest.mark.parametrize(("source", "data", "frame"), CANONICAL, ids=IDS)
def test_frame_serializes_to_the_documented_example(
    source: Source, data: dict[str, Any], frame: Frame
) -> None:
    assert json.loads(serialize(frame)) == data
    assert to_json(frame)["type"] == data["type"]


@pytest.mark.parametrize(("source", "data", "frame"), CANONICAL, ids=IDS)
def test_round_trips(source: Source, data: dict[str, Any], frame: Frame) -> None:
    assert parse(serialize(frame), source=source) == frame
    assert serialize(parse(compact(data), source=source)) == compact(data)


def test_bytes_are_accepted_as_utf8() -> None:
    text = serialize(Token("e1", "athena", "café ☕"))
    assert parse(text.encode("utf-8")) == Token("e1", "athena", "café ☕")


def test_serialize_is_ascii_and_compact() -> None:
    text = serialize(Token("e1", "athena", "café"))
    assert text.isascii()
    assert text == '{"type":"token","event_id":"e1","agent_id":"athena","token":"caf\\u00e9"}'


def test_default_source_is_relay_to_app() -> None:
    assert parse('{"type":"token","event_id":"e","agent_id":"a","token":"x"}') == Token(
        "e", "a", "x"
    )


# --- tolerated variants ---------------------------------------------------------


def _reply(**fields: Any) -> str:
    base = {"type": "reply", "event_id": "e1", "agent_id": "athena", "thread_id": "t"}
    return json.dumps({**base, **fields})


def test_reply_text_may_come_as_content() -> None:
    frame = parse(_reply(content="from content"))
    assert isinstance(frame, Reply)
    assert frame.reply == "from content"
    assert json.loads(serialize(frame))["reply"] == "from content"  # we emit `reply`


def test_reply_wins_over_content() -> None:
    frame = parse(_reply(reply="r", content="c"))
    assert isinstance(frame, Reply) and frame.reply == "r"


def test_null_reply_falls_back_to_content() -> None:
    frame = parse(_reply(reply=None, content="c"))
    assert isinstance(frame, Reply) and frame.reply == "c"


def test_reply_without_payload_metadata_or_done() -> None:
    frame = parse(_reply(reply="x"))
    assert frame == Reply("e1", "athena", "t", "x")
    assert isinstance(frame, Reply)
    assert frame.metadata == ReplyMetadata() and dict(frame.payload) == {} and frame.done is None


@pytest.mark.parametrize("done", [True, False])
def test_reply_done_is_kept(done: bool) -> None:
    frame = parse(_reply(reply="x", done=done))
    assert isinstance(frame, Reply) and frame.done is done
    assert json.loads(serialize(frame))["done"] is done


def test_reply_done_of_the_wrong_type_is_ignored() -> None:
    frame = parse(_reply(reply="x", done="yes"))
    assert isinstance(frame, Reply) and frame.done is None


@pytest.mark.parametrize("metadata", [None, "oops", [1, 2], 3])
def test_missing_or_malformed_metadata_never_loses_the_reply(metadata: Any) -> None:
    frame = parse(_reply(reply="x", metadata=metadata))
    assert isinstance(frame, Reply) and frame.reply == "x" and frame.metadata == ReplyMetadata()


def test_partial_metadata_and_extra_keys() -> None:
    frame = parse(_reply(reply="x", metadata={"model": "m", "cost": 0.5, "latency_ms": None}))
    assert isinstance(frame, Reply)
    assert frame.metadata == ReplyMetadata(model="m", extra={"cost": 0.5})
    assert json.loads(serialize(frame))["metadata"] == {"model": "m", "cost": 0.5}


def test_wrongly_typed_metadata_keys_move_to_extra() -> None:
    frame = parse(_reply(reply="x", metadata={"tokens_used": "many", "latency_ms": True}))
    assert isinstance(frame, Reply)
    assert frame.metadata.tokens_used is None and frame.metadata.latency_ms is None
    assert dict(frame.metadata.extra) == {"tokens_used": "many", "latency_ms": True}
    assert parse(serialize(frame)) == frame


@pytest.mark.parametrize("raw", ["NOT_ALLOWED", "AGENT_NOT_ALLOWED", "agent_not_allowed"])
def test_not_allowed_spellings_normalize(raw: str) -> None:
    frame = parse(json.dumps({"type": "error", "event_id": None, "error": "no", "code": raw}))
    assert isinstance(frame, Error)
    assert frame.code == raw  # kept as received, so it round-trips
    assert frame.normalized_code == "NOT_ALLOWED"
    assert frame.agent_id is None  # a missing agent_id reads as null


def test_agent_error_normalizes_too() -> None:
    assert AgentError("e", "x", "agent_not_allowed").normalized_code == "NOT_ALLOWED"


def test_accepted_without_status_defaults_to_accepted() -> None:
    frame = parse('{"type":"accepted","event_id":"e","agent_id":"a","session_key":"relay:a:p:t"}')
    assert frame == Accepted("e", "a", "relay:a:p:t", "accepted")


def test_agent_without_name_or_description() -> None:
    frame = parse('{"type":"agents","agents":[{"agent_id":"klyve"}]}')
    assert frame == Agents((AgentInfo("klyve", "klyve", ""),))


def test_agent_reply_may_say_reply_instead_of_content() -> None:
    frame = parse('{"type":"reply","event_id":"e","reply":"r"}', source=AG2R)
    assert frame == AgentReply("e", "r")


def test_extra_fields_are_ignored() -> None:
    text = '{"type":"token","event_id":"e","agent_id":"a","token":"x","seq":4,"trace":{"a":1}}'
    assert parse(text) == Token("e", "a", "x")


@pytest.mark.parametrize(
    ("source", "text"),
    [
        (R2A, '{"type":"typing","event_id":"e","agent_id":"a"}'),
        (R2A, '{"type":"event","agent_id":"a","thread_id":"t","payload":{}}'),
        (A2R, '{"type":"token","event_id":"e","agent_id":"a","token":"x"}'),
        (R2AG, '{"type":"discover"}'),
        (AG2R, '{"type":"accepted","event_id":"e"}'),
    ],
)
def test_unknown_types_become_unknown_frames(source: Source, text: str) -> None:
    frame = parse(text, source=source)
    assert isinstance(frame, Unknown)
    data = json.loads(text)
    assert frame.type == data.pop("type")
    assert thaw_json(frame.data) == data
    assert parse(serialize(frame), source=source) == frame


def test_lone_surrogates_become_replacement_characters() -> None:
    frame = parse('{"type":"token","event_id":"e","agent_id":"a","token":"x\\ud800y"}')
    assert isinstance(frame, Token) and frame.token == "x\ufffdy"
    frame.token.encode("utf-8")  # storable


def test_surrogate_pairs_survive() -> None:
    frame = parse('{"type":"token","event_id":"e","agent_id":"a","token":"\\ud83d\\ude00"}')
    assert isinstance(frame, Token) and frame.token == "😀"


# --- rejected input -------------------------------------------------------------

BAD: list[tuple[Source, Any, str]] = [
    (R2A, "", "not valid JSON"),
    (R2A, "not json", "not valid JSON"),
    (R2A, b"\xff\xfe", "not valid UTF-8"),
    (R2A, "[]", "must be a JSON object, not an array"),
    (R2A, '"token"', "not a string"),
    (R2A, "null", "not null"),
    (R2A, "{}", "no 'type'"),
    (R2A, '{"type":7}', "no 'type'"),
    (R2A, '{"type":""}', "no 'type'"),
    (R2A, '{"type":"token","event_id":"e","agent_id":"a"}', "'token' is missing"),
    (R2A, '{"type":"token","event_id":"e","agent_id":"a","token":5}', "'token' must be a string"),
    (R2A, '{"type":"token","event_id":"","agent_id":"a","token":""}', "'event_id' must be"),
    (R2A, '{"type":"token","event_id":3,"agent_id":"a","token":""}', "'event_id' must be"),
    (R2A, '{"type":"reply","event_id":"e","agent_id":"a","thread_id":"t"}', "none of reply"),
    (R2A, '{"type":"reply","event_id":"e","agent_id":"a","reply":"x"}', "'thread_id'"),
    (
        R2A,
        '{"type":"reply","event_id":"e","agent_id":"a","thread_id":"t","reply":"x","payload":[1]}',
        "'payload' must be a JSON object",
    ),
    (R2A, '{"type":"error","event_id":null,"error":"x"}', "'code' is missing"),
    (R2A, '{"type":"error","event_id":null,"error":"x","code":""}', "'code' must be"),
    (R2A, '{"type":"error","event_id":null,"code":"X"}', "'error' is missing"),
    (R2A, '{"type":"agents","agents":{}}', "'agents' must be an array"),
    (R2A, '{"type":"agents","agents":["athena"]}', "entry 0 must be an object"),
    (R2A, '{"type":"agents","agents":[{"name":"x"}]}', "'agent_id' is missing"),
    (R2A, '{"type":"agents","agents":[{"agent_id":"a","name":3}]}', "'name' must be a string"),
    (R2A, '{"type":"accepted","event_id":"e","agent_id":"a"}', "'session_key' is missing"),
    (A2R, '{"type":"event","agent_id":"a","thread_id":"t"}', "'payload' is missing"),
    (A2R, '{"type":"event","agent_id":"a","thread_id":"t","payload":"x"}', "JSON object"),
    (A2R, '{"type":"event","agent_id":"a","payload":{}}', "'thread_id' is missing"),
    (
        R2AG,
        '{"type":"event","event_id":"e","app_id":"p","thread_id":"t","payload":{}}',
        "'session_key' is missing",
    ),
    (AG2R, '{"type":"error","event_id":"e","error":"x"}', "'code' is missing"),
    (AG2R, '{"type":"reply","event_id":"e"}', "none of content, reply"),
    (R2A, "NaN", "NaN"),
    (R2A, '{"type":"x","v":Infinity}', "Infinity"),
    (R2A, '{"type":"x","v":-Infinity}', "-Infinity"),
    (R2A, '{"type":"x","v":1e999}', "too large to represent"),
    (R2A, '{"type":"x","v":' + "9" * 5000 + "}", "too large to read"),
    (R2A, "[" * 100_000 + "]" * 100_000, "nested too deeply"),
    (R2A, '{"type":"x","v":' + "[" * 150 + "]" * 150 + "}", "nested deeper than"),
    (R2A, 42, "must be text"),
    (R2A, None, "must be text"),
]


@pytest.mark.parametrize(("source", "text", "reason"), BAD)
def test_bad_input_raises_protocol_error_with_a_reason(
    source: Source, text: Any, reason: str
) -> None:
    with pytest.raises(ProtocolError) as caught:
        parse(text, source=source)
    assert reason in caught.value.reason
    assert type(caught.value) is ProtocolError


def test_a_malformed_frame_naming_an_event_carries_its_id() -> None:
    with pytest.raises(ProtocolError) as caught:
        parse('{"type":"reply","event_id":"evt_1","agent_id":"a","thread_id":"t"}')
    assert caught.value.event_id == "evt_1"
    assert caught.value.frame_type == "reply"


def test_reasons_never_quote_values() -> None:
    secret = "rlk_portal_s3cr3t"
    texts = [
        f'{{"type":"token","event_id":"e","agent_id":"a","token":{{"t":"{secret}"}}}}',
        f'{{"type":"error","event_id":null,"error":"x","code":["{secret}"]}}',
        f'{{"type":"{secret}","v":' + "[" * 150 + "]" * 150 + "}",
        f'{{"type":"token","token":"{secret}"',
        secret,
    ]
    for text in texts:
        with pytest.raises(ProtocolError) as caught:
            parse(text)
        assert secret not in str(caught.value)
