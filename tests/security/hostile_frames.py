"""Hypothesis strategies for what a broken or hostile Relay might send an app.

Every message drawn here is one WebSocket message that a correct client must
log and ignore (or, when it names an event the client knows, fail that event
visibly). None of them is a *valid* frame about a live event: the tests check
that the worker's runs are untouched, so the strategies never produce a
well-formed ``reply``/``token`` for an event the worker sent, a well-formed
``agents`` list (that would legitimately replace the agent directory) or a
null-event ``UNAUTHORIZED`` error (that legitimately means "your token is bad").
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

#: Frame types Relay sends an app, plus types nobody defined.
FRAME_TYPES = ["accepted", "token", "reply", "error", "agents", "ping", "pong", "event", ""]

#: Error codes a hostile frame may carry (never UNAUTHORIZED, see the module doc).
CODES = [
    "AGENT_OFFLINE",
    "RATE_LIMITED",
    "AGENT_TIMEOUT",
    "AGENT_ERROR",
    "NOT_ALLOWED",
    "AGENT_NOT_FOUND",
    "PAYLOAD_TOO_LARGE",
    "INVALID_MESSAGE",
    "RELAYBRIDGE_STALLED",
]

#: Text that is dangerous somewhere downstream: HTML, SQL, format strings, tokens.
NASTY_TEXT = [
    "<script>window.__pwned=1</script>",
    '"><img src=x onerror=alert(1)>',
    "javascript:alert(1)",
    "'; DROP TABLE relaybridge_agentrun; --",
    "%s%s%s%n{0}{run}",
    "\x00\x01\x1b[31m",
    "\ud800",
    "rla_athena_0123456789abcdef",
    "\u202eevil\u200b",
]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40)
    | st.sampled_from(NASTY_TEXT)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)

#: Event ids the worker never saw: Relay's shape, empty, or anything at all.
foreign_event_ids = (
    st.builds(lambda tail: f"evt_hostile_{tail}", st.text(min_size=1, max_size=12))
    | st.just("")
    | json_values
)


@st.composite
def mistyped_frames(draw: st.DrawFn) -> dict[str, Any]:
    """A frame of a known (or unknown) type whose fields are missing, extra or mistyped."""
    frame_type = draw(st.sampled_from(FRAME_TYPES) | st.text(max_size=12) | json_values)
    frame: dict[str, Any] = {"type": frame_type}
    for key in ("event_id", "agent_id", "thread_id", "session_key", "token", "reply", "content"):
        if draw(st.booleans()):
            frame[key] = draw(foreign_event_ids if key == "event_id" else json_values)
    if draw(st.booleans()):
        frame["code"] = draw(st.sampled_from(CODES) | json_values)
    if draw(st.booleans()):
        frame["error"] = draw(json_values)
    if frame_type == "agents" or draw(st.booleans()):
        # Never a well-formed list: a non-list, or a list with a non-object entry.
        frame["agents"] = draw(json_scalars | st.lists(json_scalars, min_size=1, max_size=3))
    if draw(st.booleans()):
        frame["metadata"] = draw(json_values)
    if draw(st.booleans()):
        frame["payload"] = draw(json_values)
    if frame.get("type") == "error" and frame.get("event_id") is None:
        frame["code"] = draw(st.sampled_from(CODES))
    return frame


@st.composite
def well_typed_foreign_frames(draw: st.DrawFn) -> dict[str, Any]:
    """Correctly shaped frames about events this worker never sent."""
    event_id = draw(st.builds(lambda t: f"evt_hostile_{t}", st.text(min_size=1, max_size=12)))
    agent_id = draw(st.sampled_from(["athena", "klyve", "stall", "nobody"]))
    text = draw(st.text(max_size=200) | st.sampled_from(NASTY_TEXT))
    return draw(
        st.sampled_from(
            [
                {"type": "token", "event_id": event_id, "agent_id": agent_id, "token": text},
                {
                    "type": "reply",
                    "event_id": event_id,
                    "agent_id": agent_id,
                    "thread_id": "task-1",
                    "reply": text,
                    "payload": {"relaybridge_run": text},
                    "metadata": {"tokens_used": "many", "model": 7},
                },
                {
                    "type": "error",
                    "event_id": event_id,
                    "agent_id": agent_id,
                    "error": text,
                    "code": draw(st.sampled_from(CODES)),
                },
                {
                    "type": "accepted",
                    "event_id": event_id,
                    "agent_id": agent_id,
                    "session_key": f"relay:{agent_id}:test:{text}",
                    "status": "accepted",
                },
            ]
        )
    )


def _truncate(frame_and_cut: tuple[dict[str, Any], float]) -> str:
    frame, fraction = frame_and_cut
    text = json.dumps(frame)
    return text[: max(1, int(len(text) * fraction))]


#: One WebSocket message a broken Relay might send.
hostile_messages = st.one_of(
    st.text(max_size=200),
    json_values.map(json.dumps),
    mistyped_frames().map(json.dumps),
    well_typed_foreign_frames().map(json.dumps),
    st.tuples(
        mistyped_frames() | well_typed_foreign_frames(), st.floats(min_value=0.05, max_value=0.95)
    ).map(_truncate),
    st.integers(min_value=101, max_value=3000).map(lambda depth: "[" * depth + "]" * depth),
    st.integers(min_value=1, max_value=400).map(lambda n: '{"type":' * n),
    st.binary(max_size=200),
)
