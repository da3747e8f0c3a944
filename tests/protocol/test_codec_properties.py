"""Property tests: parse raises nothing but ProtocolError, and frames round-trip."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
)
from relaybridge.protocol.frames import METADATA_FIELDS

SOURCES = st.sampled_from(list(Source))
FIELD_NAMES = [
    "type", "event_id", "agent_id", "thread_id", "app_id", "session_key", "status", "agents",
    "name", "description", "token", "reply", "content", "payload", "metadata", "done", "error",
    "code",
]  # fmt: skip
TYPES = ["event", "discover", "ping", "pong", "accepted", "agents", "token", "reply", "error"]

# Text without surrogates: those are replaced on parse, by design.
text = st.text(st.characters(codec="utf-8"), max_size=30)
ident = text.filter(bool)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)
json_objects = st.dictionaries(text, json_values, max_size=5)


def parse_or_protocol_error(raw: Any, source: Source) -> Frame | None:
    try:
        frame = parse(raw, source=source)
    except ProtocolError as exc:
        assert exc.reason and isinstance(exc.reason, str)
        return None
    # Anything that parses must serialize and parse back to itself.
    assert parse(serialize(frame), source=source) == frame
    return frame


@given(st.text(), SOURCES)
def test_arbitrary_text(raw: str, source: Source) -> None:
    parse_or_protocol_error(raw, source)


@given(st.binary(), SOURCES)
def test_arbitrary_bytes(raw: bytes, source: Source) -> None:
    parse_or_protocol_error(raw, source)


@given(json_values, SOURCES)
def test_arbitrary_json(value: Any, source: Source) -> None:
    parse_or_protocol_error(json.dumps(value), source)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(TYPES),
    st.dictionaries(st.sampled_from(FIELD_NAMES), json_values | ident, max_size=10),
    SOURCES,
)
def test_frame_shaped_json(frame_type: str, fields: dict[str, Any], source: Source) -> None:
    """Objects with a known type and known field names but arbitrary values."""
    parse_or_protocol_error(json.dumps({**fields, "type": frame_type}), source)


metadata = st.builds(
    ReplyMetadata,
    tokens_used=st.none() | st.integers(),
    model=st.none() | text,
    latency_ms=st.none() | st.integers(),
    session_key=st.none() | text,
    extra=st.dictionaries(text.filter(lambda k: k not in METADATA_FIELDS), json_values),
)
optional_ident = st.none() | ident
done = st.none() | st.booleans()

FRAMES: dict[Source, st.SearchStrategy[Any]] = {
    Source.APP_TO_RELAY: st.one_of(
        st.builds(Event, ident, ident, json_objects),
        st.just(Discover()),
        st.just(Ping()),
        st.just(Pong()),
        st.builds(Unknown, st.sampled_from(["hello", "ack"]), json_objects),
    ),
    Source.RELAY_TO_APP: st.one_of(
        st.builds(Accepted, ident, ident, ident, text),
        st.builds(Agents, st.lists(st.builds(AgentInfo, ident, text, text)).map(tuple)),
        st.builds(Token, ident, ident, text),
        st.builds(Reply, ident, ident, ident, text, json_objects, metadata, done),
        st.builds(Error, optional_ident, optional_ident, text, ident),
        st.just(Ping()),
        st.just(Pong()),
    ),
    Source.RELAY_TO_AGENT: st.one_of(
        st.builds(AgentEvent, ident, ident, ident, ident, json_objects),
        st.just(Ping()),
    ),
    Source.AGENT_TO_RELAY: st.one_of(
        st.builds(AgentToken, ident, text),
        st.builds(AgentReply, ident, text, metadata, done),
        st.builds(AgentError, ident, text, ident),
        st.just(Pong()),
    ),
}


@given(st.data())
def test_every_frame_round_trips(data: st.DataObject) -> None:
    source = data.draw(SOURCES)
    frame = data.draw(FRAMES[source])
    text_form = serialize(frame)
    assert text_form.isascii()
    assert parse(text_form, source=source) == frame
    assert serialize(parse(text_form, source=source)) == text_form
