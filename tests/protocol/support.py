"""Helpers for the protocol tests: a settable clock and terse frame builders."""

from __future__ import annotations

from typing import Any

from relaybridge.protocol import (
    STARTER,
    Accepted,
    Error,
    PlanLimits,
    RelaySession,
    Reply,
    Submission,
    Token,
)


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


def make_session(
    clock: FakeClock | None = None,
    limits: PlanLimits = STARTER,
    *,
    margin: float = 0.0,
    **kwargs: Any,
) -> tuple[RelaySession, FakeClock]:
    """A connected session with a fake clock (and no pacing margin unless asked)."""
    clock = clock or FakeClock()
    session = RelaySession(clock=clock, limits=limits, window_margin_s=margin, **kwargs)
    session.on_connect()
    return session, clock


def sub(ref: str, agent: str = "athena", thread: str = "task-1", **payload: Any) -> Submission:
    return Submission(ref, agent, thread, {"event": "comment.mention", "message": ref, **payload})


def accepted(event_id: str, agent: str = "athena", thread: str = "task-1") -> Accepted:
    return Accepted(event_id, agent, f"relay:{agent}:portal:{thread}")


def token(event_id: str, text: str, agent: str = "athena") -> Token:
    return Token(event_id, agent, text)


def reply(
    event_id: str, text: str = "done", agent: str = "athena", thread: str = "task-1"
) -> Reply:
    return Reply(event_id, agent, thread, text)


def error(event_id: str | None, code: str, agent: str | None = "athena", text: str = "") -> Error:
    return Error(event_id, agent, text or code.lower(), code)
