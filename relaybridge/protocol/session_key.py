"""Relay's session keys (relay-protocol.md §3 and §8).

Two shapes exist:

- app side, in ``accepted`` and reply metadata: ``relay:{agent_id}:{app_id}:{thread_id}``;
- agent side, in the event Relay hands an agent: ``relay:{app_id}:{thread_id}``
  (the agent already knows who it is).

Thread ids may contain ``:`` while agent and app ids may not, so splits are
bounded and everything after the last id is the thread id.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ProtocolError

PREFIX = "relay"


@dataclass(frozen=True, slots=True)
class SessionKey:
    """An app-side session key: which agent, app and thread an event belongs to."""

    agent_id: str
    app_id: str
    thread_id: str

    def __str__(self) -> str:
        return format_session_key(self.agent_id, self.app_id, self.thread_id)


@dataclass(frozen=True, slots=True)
class AgentSessionKey:
    """An agent-side session key: which app and thread an event belongs to."""

    app_id: str
    thread_id: str

    def __str__(self) -> str:
        return format_agent_session_key(self.app_id, self.thread_id)


def _split(key: object, parts: int, shape: str) -> list[str]:
    if not isinstance(key, str):
        raise ProtocolError(f"session key must be a string, not {type(key).__name__}")
    pieces = key.split(":", parts - 1)
    if len(pieces) != parts or pieces[0] != PREFIX or not all(pieces[1:]):
        # The key names agents and threads, not secrets, but it is still input:
        # describe its expected shape rather than echoing it.
        raise ProtocolError(f"session key does not have the shape {shape}")
    return pieces


def parse_session_key(key: str) -> SessionKey:
    """Split ``relay:{agent_id}:{app_id}:{thread_id}``; ProtocolError otherwise."""
    _, agent_id, app_id, thread_id = _split(key, 4, "relay:{agent_id}:{app_id}:{thread_id}")
    return SessionKey(agent_id, app_id, thread_id)


def parse_agent_session_key(key: str) -> AgentSessionKey:
    """Split the agent-side ``relay:{app_id}:{thread_id}``; ProtocolError otherwise."""
    _, app_id, thread_id = _split(key, 3, "relay:{app_id}:{thread_id}")
    return AgentSessionKey(app_id, thread_id)


def _check_ids(**ids: str) -> None:
    for name, value in ids.items():
        if not value:
            raise ProtocolError(f"{name} must not be empty in a session key")
        if ":" in value:
            raise ProtocolError(f"{name} must not contain ':' in a session key")


def format_session_key(agent_id: str, app_id: str, thread_id: str) -> str:
    """``relay:{agent_id}:{app_id}:{thread_id}``; ids that would not split back are refused."""
    _check_ids(agent_id=agent_id, app_id=app_id)
    if not thread_id:
        raise ProtocolError("thread_id must not be empty in a session key")
    return f"{PREFIX}:{agent_id}:{app_id}:{thread_id}"


def format_agent_session_key(app_id: str, thread_id: str) -> str:
    """``relay:{app_id}:{thread_id}``; ids that would not split back are refused."""
    _check_ids(app_id=app_id)
    if not thread_id:
        raise ProtocolError("thread_id must not be empty in a session key")
    return f"{PREFIX}:{app_id}:{thread_id}"
