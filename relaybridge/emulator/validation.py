"""Structural validation of app frames, in the order Relay applies it.

The order matters because a frame with several faults gets exactly one error:

1. the text is JSON and the JSON is an object;
2. ``type`` is a string (unknown types are refused too);
3. for ``event``: ``agent_id`` and ``thread_id`` are non-empty strings and
   ``payload`` is an object → otherwise ``INVALID_MESSAGE``;
4. the payload is at most 65,536 bytes as ``json.dumps`` UTF-8 → ``PAYLOAD_TOO_LARGE``.

Routing checks follow in :mod:`relaybridge.emulator.router` (unknown agent,
not allowed, injected failures, rate limits, offline).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from relaybridge.protocol.payload import MAX_PAYLOAD_BYTES, payload_size

from .frames import JsonObject

APP_FRAME_TYPES = frozenset({"event", "discover", "ping", "pong"})


@dataclass(frozen=True)
class Refusal:
    """A null-event error: the frame was refused before any event existed."""

    code: str
    message: str
    agent_id: str | None = None


@dataclass(frozen=True)
class EventRequest:
    """A structurally valid ``event`` frame."""

    agent_id: str
    thread_id: str
    payload: JsonObject


def invalid(message: str, agent_id: str | None = None) -> Refusal:
    return Refusal("INVALID_MESSAGE", message, agent_id)


def parse_app_frame(message: str | bytes) -> JsonObject | Refusal:
    """Steps 1 and 2: a JSON object with a known string ``type``."""
    if isinstance(message, bytes):
        return invalid("Binary frames are not supported; send JSON text")
    try:
        frame: Any = json.loads(message)
    except ValueError:
        return invalid("Message is not valid JSON")
    if not isinstance(frame, dict):
        return invalid("Message must be a JSON object")
    frame_type = frame.get("type")
    if not isinstance(frame_type, str) or not frame_type:
        return invalid("Missing or invalid field: type")
    if frame_type not in APP_FRAME_TYPES:
        return invalid(f"Unknown message type: {frame_type[:64]}")
    return frame


def validate_event(frame: JsonObject) -> EventRequest | Refusal:
    """Steps 3 and 4 for a frame whose ``type`` is ``event``."""
    agent_id = frame.get("agent_id")
    if not isinstance(agent_id, str) or not agent_id:
        return invalid("Missing or invalid field: agent_id")
    thread_id = frame.get("thread_id")
    if not isinstance(thread_id, str) or not thread_id:
        return invalid("Missing or invalid field: thread_id", agent_id)
    payload = frame.get("payload")
    if not isinstance(payload, dict):
        return invalid("Missing or invalid field: payload (must be an object)", agent_id)
    size = payload_size(payload)
    if size > MAX_PAYLOAD_BYTES:
        return Refusal(
            "PAYLOAD_TOO_LARGE",
            f"Payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}",
            agent_id,
        )
    return EventRequest(agent_id, thread_id, payload)
