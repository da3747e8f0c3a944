"""An accepted event as Relay tracks it, and the counters tests assert on."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field

from websockets.asyncio.server import ServerConnection

from . import frames
from .agents import AgentEvent
from .faults import InjectedFailure


def new_event_id() -> str:
    """Relay mints event ids; clients never make one up (protocol §2)."""
    return "evt_" + secrets.token_hex(8)


@dataclass
class OpenEvent:
    """An event between its ``accepted`` frame and its terminal frame."""

    event_id: str
    app_id: str
    agent_id: str
    thread_id: str
    payload: frames.JsonObject
    origin: ServerConnection | None
    received_at: float = field(default_factory=time.monotonic)
    injected: InjectedFailure | None = None
    task: asyncio.Task[None] | None = None
    timer: asyncio.TimerHandle | None = None
    #: Set once the event reached its terminal frame (tests wait on it).
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def session_key(self) -> str:
        return frames.session_key(self.agent_id, self.app_id, self.thread_id)

    def for_agent(self) -> AgentEvent:
        return AgentEvent(
            event_id=self.event_id,
            app_id=self.app_id,
            thread_id=self.thread_id,
            session_key=frames.agent_session_key(self.app_id, self.thread_id),
            payload=self.payload,
            received_at=self.received_at,
        )


@dataclass
class Stats:
    """Counters tests can assert on."""

    events_accepted: int = 0
    events_refused: int = 0
    frames_dropped: int = 0
    frames_undeliverable: int = 0
    agent_pings_sent: int = 0
    agents_dropped: int = 0
    app_pings_sent: int = 0
    apps_dropped: int = 0
    agent_pongs: int = 0
