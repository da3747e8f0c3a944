"""Frames to wire text: the canonical form :func:`relaybridge.protocol.codec.parse` reads back.

Only the chosen spelling of each variant is emitted (``reply``, never
``content``, for the app; ``done`` only when known; metadata keys only when set).
"""

from __future__ import annotations

from typing import Any

from .frames import (
    METADATA_FIELDS,
    Accepted,
    AgentError,
    AgentEvent,
    AgentReply,
    Agents,
    AgentToken,
    Discover,
    Error,
    Event,
    Frame,
    Ping,
    Pong,
    Reply,
    ReplyMetadata,
    Token,
    Unknown,
)
from .jsonvalue import encode_json


def _metadata_json(metadata: ReplyMetadata) -> dict[str, Any]:
    out: dict[str, Any] = dict(metadata.extra)
    for name in METADATA_FIELDS:
        value = getattr(metadata, name)
        if value is not None:
            out[name] = value
    return out


def to_json(frame: Frame) -> dict[str, Any]:
    """The canonical JSON object for ``frame`` (nested objects may be frozen)."""
    out: dict[str, Any] = {"type": frame.type}
    match frame:
        case Event():
            out.update(agent_id=frame.agent_id, thread_id=frame.thread_id, payload=frame.payload)
        case Accepted():
            out.update(
                event_id=frame.event_id,
                agent_id=frame.agent_id,
                session_key=frame.session_key,
                status=frame.status,
            )
        case Agents():
            out["agents"] = [
                {"agent_id": a.agent_id, "name": a.name, "description": a.description}
                for a in frame.agents
            ]
        case Token():
            out.update(event_id=frame.event_id, agent_id=frame.agent_id, token=frame.token)
        case Reply():
            out.update(
                event_id=frame.event_id,
                agent_id=frame.agent_id,
                thread_id=frame.thread_id,
                reply=frame.reply,
                payload=frame.payload,
                metadata=_metadata_json(frame.metadata),
            )
            if frame.done is not None:
                out["done"] = frame.done
        case Error():
            out.update(
                event_id=frame.event_id, agent_id=frame.agent_id, error=frame.error, code=frame.code
            )
        case AgentEvent():
            out.update(
                event_id=frame.event_id,
                app_id=frame.app_id,
                thread_id=frame.thread_id,
                session_key=frame.session_key,
                payload=frame.payload,
            )
        case AgentToken():
            out.update(event_id=frame.event_id, token=frame.token)
        case AgentReply():
            out.update(
                event_id=frame.event_id,
                content=frame.content,
                metadata=_metadata_json(frame.metadata),
            )
            if frame.done is not None:
                out["done"] = frame.done
        case AgentError():
            out.update(event_id=frame.event_id, error=frame.error, code=frame.code)
        case Unknown():
            out.update(frame.data)
        case Discover() | Ping() | Pong():
            pass
    return out


def serialize(frame: Frame) -> str:
    """The canonical wire text for ``frame`` (compact, ASCII-only JSON)."""
    return encode_json(to_json(frame))
