"""The JSON frames the emulator sends, built in one place so every path agrees.

These are Relay's side of the wire (protocol §3 and §8). They are plain dicts on
purpose: the emulator must not share code with the client it is used to test.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

JsonObject = dict[str, Any]

UNAUTHORIZED_MESSAGE = "Invalid or revoked token"


def encode(frame: Mapping[str, Any]) -> str:
    return json.dumps(frame, ensure_ascii=False)


def error_frame(
    code: str, message: str, *, event_id: str | None = None, agent_id: str | None = None
) -> JsonObject:
    """An error; ``event_id`` is null when the event was refused before acceptance."""
    return {
        "type": "error",
        "event_id": event_id,
        "agent_id": agent_id,
        "error": message,
        "code": code,
    }


def unauthorized_frame() -> JsonObject:
    return error_frame("UNAUTHORIZED", UNAUTHORIZED_MESSAGE)


def session_key(agent_id: str, app_id: str, thread_id: str) -> str:
    """The app-facing session key ``relay:{agent_id}:{app_id}:{thread_id}``."""
    return f"relay:{agent_id}:{app_id}:{thread_id}"


def agent_session_key(app_id: str, thread_id: str) -> str:
    """The agent-facing session key: §8 shows it without the agent id."""
    return f"relay:{app_id}:{thread_id}"


def accepted_frame(event_id: str, agent_id: str, key: str) -> JsonObject:
    return {
        "type": "accepted",
        "event_id": event_id,
        "agent_id": agent_id,
        "session_key": key,
        "status": "accepted",
    }


def agents_frame(agents: list[JsonObject]) -> JsonObject:
    return {"type": "agents", "agents": agents}


def token_frame(event_id: str, agent_id: str, token: str) -> JsonObject:
    return {"type": "token", "event_id": event_id, "agent_id": agent_id, "token": token}


def reply_frame(
    *,
    event_id: str,
    agent_id: str,
    thread_id: str,
    text: str,
    payload: JsonObject,
    metadata: Mapping[str, Any],
    key: str,
) -> JsonObject:
    """An agent's reply as Relay rewrites it for the app (``content`` → ``reply``)."""
    return {
        "type": "reply",
        "event_id": event_id,
        "agent_id": agent_id,
        "thread_id": thread_id,
        "reply": text,
        "payload": payload,
        "metadata": {**metadata, "session_key": key},
    }


def agent_event_frame(
    *, event_id: str, app_id: str, thread_id: str, payload: JsonObject
) -> JsonObject:
    """An event as Relay hands it to an agent (protocol §8)."""
    return {
        "type": "event",
        "event_id": event_id,
        "app_id": app_id,
        "thread_id": thread_id,
        "session_key": agent_session_key(app_id, thread_id),
        "payload": payload,
    }


PING: JsonObject = {"type": "ping"}
PONG: JsonObject = {"type": "pong"}
