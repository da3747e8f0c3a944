"""Turning wire text into frames and back.

:func:`parse` accepts anything and raises nothing but :class:`ProtocolError`.
It tolerates every variant relay-protocol.md lists; :func:`serialize` emits only
the canonical form: ``parse(serialize(f)) == f`` for every frame, and
``serialize(parse(text)) == text`` whenever ``text`` is already canonical (as
:func:`serialize` writes it). Two exceptions by design: lone surrogates in
strings become U+FFFD, and an :class:`Unknown` whose ``type`` the direction
does define parses as that frame.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any, Literal, TypeAlias, overload

from ._fields import Fields
from .encode import serialize, to_json
from .errors import ProtocolError
from .frames import (
    Accepted,
    AgentError,
    AgentEvent,
    AgentInfo,
    AgentReply,
    Agents,
    AgentToken,
    AgentToRelayFrame,
    AppToRelayFrame,
    Discover,
    Error,
    Event,
    Frame,
    Ping,
    Pong,
    RelayToAgentFrame,
    RelayToAppFrame,
    Reply,
    Token,
    Unknown,
)
from .jsonvalue import decode_json, freeze_object

__all__ = ["Source", "parse", "serialize", "to_json"]


class Source(Enum):
    """Who sent a frame: the same ``type`` has a different shape per direction."""

    RELAY_TO_APP = "relay_to_app"
    APP_TO_RELAY = "app_to_relay"
    RELAY_TO_AGENT = "relay_to_agent"
    AGENT_TO_RELAY = "agent_to_relay"


_Reader: TypeAlias = Callable[[Fields], Frame]


def _agents(f: Fields) -> Agents:
    infos = []
    for index, item in enumerate(f.array("agents")):
        if not isinstance(item, Mapping):
            raise ProtocolError(f"agents frame: entry {index} must be an object")
        entry = Fields(item, f"agents[{index}]")
        agent_id = entry.ident("agent_id")
        name = entry.optional_text("name")
        infos.append(
            AgentInfo(
                agent_id=agent_id,
                # A display name is always useful; the id is the honest fallback.
                name=agent_id if name is None else name,
                description=entry.optional_text("description") or "",
            )
        )
    return Agents(tuple(infos))


def _accepted(f: Fields) -> Accepted:
    status = f.optional_text("status")
    return Accepted(
        event_id=f.ident("event_id"),
        agent_id=f.ident("agent_id"),
        session_key=f.ident("session_key"),
        status="accepted" if status is None else status,
    )


def _reply(f: Fields) -> Reply:
    return Reply(
        event_id=f.ident("event_id"),
        agent_id=f.ident("agent_id"),
        thread_id=f.ident("thread_id"),
        reply=f.first_text("reply", "content"),
        payload=f.optional_obj("payload"),
        metadata=f.metadata(),
        done=f.lenient_bool("done"),
    )


_READERS: dict[Source, dict[str, _Reader]] = {
    Source.RELAY_TO_APP: {
        "accepted": _accepted,
        "agents": _agents,
        "token": lambda f: Token(f.ident("event_id"), f.ident("agent_id"), f.text("token")),
        "reply": _reply,
        "error": lambda f: Error(
            event_id=f.optional_ident("event_id"),
            agent_id=f.optional_ident("agent_id"),
            error=f.text("error"),
            code=f.ident("code"),
        ),
    },
    Source.APP_TO_RELAY: {
        "event": lambda f: Event(f.ident("agent_id"), f.ident("thread_id"), f.obj("payload")),
        "discover": lambda f: Discover(),
    },
    Source.RELAY_TO_AGENT: {
        "event": lambda f: AgentEvent(
            event_id=f.ident("event_id"),
            app_id=f.ident("app_id"),
            thread_id=f.ident("thread_id"),
            session_key=f.ident("session_key"),
            payload=f.obj("payload"),
        ),
    },
    Source.AGENT_TO_RELAY: {
        "token": lambda f: AgentToken(f.ident("event_id"), f.text("token")),
        "reply": lambda f: AgentReply(
            event_id=f.ident("event_id"),
            content=f.first_text("content", "reply"),
            metadata=f.metadata(),
            done=f.lenient_bool("done"),
        ),
        "error": lambda f: AgentError(f.ident("event_id"), f.text("error"), f.ident("code")),
    },
}
for _readers in _READERS.values():
    # Heartbeats go both ways on both endpoints.
    _readers["ping"] = lambda f: Ping()
    _readers["pong"] = lambda f: Pong()


@overload
def parse(text: str | bytes, *, source: Literal[Source.RELAY_TO_APP] = ...) -> RelayToAppFrame: ...
@overload
def parse(text: str | bytes, *, source: Literal[Source.APP_TO_RELAY]) -> AppToRelayFrame: ...
@overload
def parse(text: str | bytes, *, source: Literal[Source.RELAY_TO_AGENT]) -> RelayToAgentFrame: ...
@overload
def parse(text: str | bytes, *, source: Literal[Source.AGENT_TO_RELAY]) -> AgentToRelayFrame: ...
@overload
def parse(text: str | bytes, *, source: Source) -> Frame: ...
def parse(text: str | bytes, *, source: Source = Source.RELAY_TO_APP) -> Frame:
    """The frame in ``text`` (one WebSocket message) sent in direction ``source``.

    Unknown types become :class:`Unknown`; extra fields are ignored. Anything
    else that is wrong raises :class:`ProtocolError`, carrying the event id when
    the frame names one.
    """
    try:
        data = decode_json(text)
        return _frame_from(data, source)
    except RecursionError:
        raise ProtocolError("frame is nested too deeply") from None


def _frame_from(data: Any, source: Source) -> Frame:
    if not isinstance(data, dict):
        raise ProtocolError(f"frame must be a JSON object, not {_json_kind(data)}")
    frame_type = data.get("type")
    if not isinstance(frame_type, str) or not frame_type:
        raise ProtocolError("frame has no 'type' string")
    reader = _READERS[source].get(frame_type)
    if reader is None:
        rest = {key: value for key, value in data.items() if key != "type"}
        return Unknown(frame_type, freeze_object(rest, what="unknown frame"))
    try:
        return reader(Fields(data, frame_type))
    except ProtocolError as exc:
        event_id = data.get("event_id")
        if exc.event_id is not None or not isinstance(event_id, str) or not event_id:
            raise
        raise ProtocolError(exc.reason, event_id=event_id, frame_type=frame_type) from None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return "null"
