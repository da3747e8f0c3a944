"""The sans-I/O Relay core.

Pure data and decisions: frames, parsing, policies and the session state machine.
Nothing here imports django, asyncio or websockets, so every rule can be tested
without a socket or an event loop.

- :mod:`.frames` — one frozen dataclass per frame type, both directions;
- :mod:`.codec` — :func:`parse` (raises only :class:`ProtocolError`) and
  :func:`serialize` (written in :mod:`.encode`); :mod:`.jsonvalue` freezes the
  JSON objects frames carry;
- :mod:`.session_key` — app-side and agent-side session keys;
- :mod:`.codes`, :mod:`.policy` — error codes and what to do about each;
- :mod:`.backoff` — reconnect delays; :mod:`.pacing` — plan limits and windows;
- :mod:`.session` — :class:`RelaySession`, the app-side state machine, with its
  values in :mod:`.outcomes`, its state in :mod:`.submissions`, its queue (fair
  across the people asking) in :mod:`.lanes` and its frame matching in
  :mod:`.correlation`;
- :mod:`.payload` — the 65,536-byte payload limit;
- :mod:`.redaction` — tokens blanked in text, whole or as it streams
  (:class:`~.redaction.StreamRedactor`).
"""

from .backoff import Backoff
from .codec import Source, parse, serialize, to_json
from .codes import ErrorCode, normalize_code
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
    ReplyMetadata,
    Token,
    Unknown,
)
from .jsonvalue import thaw_json
from .outcomes import (
    AgentsDiscovered,
    ConnectionFailed,
    EventFailed,
    LateFrame,
    Outcome,
    PingReceived,
    PongReceived,
    RefState,
    ReplyReceived,
    Requeued,
    SendBatch,
    SessionCounts,
    Submission,
    SubmissionAccepted,
    SubmissionRejected,
    TokenReceived,
    UnhandledFrame,
    UnknownEvent,
)
from .pacing import SCALE, STARTER, UNLIMITED, Pacer, PlanLimits, SlidingWindow, plan_limits
from .payload import MAX_PAYLOAD_BYTES, PayloadTooLarge, check_payload_size, payload_size
from .policy import (
    POLICIES,
    CodePolicy,
    RetryDecision,
    decide_retry,
    describe_decision,
    describe_error,
    format_delay,
    policy_for,
)
from .session import RelaySession
from .session_key import (
    AgentSessionKey,
    SessionKey,
    format_agent_session_key,
    format_session_key,
    parse_agent_session_key,
    parse_session_key,
)

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "POLICIES",
    "SCALE",
    "STARTER",
    "UNLIMITED",
    "Accepted",
    "AgentError",
    "AgentEvent",
    "AgentInfo",
    "AgentReply",
    "AgentSessionKey",
    "AgentToRelayFrame",
    "AgentToken",
    "Agents",
    "AgentsDiscovered",
    "AppToRelayFrame",
    "Backoff",
    "CodePolicy",
    "ConnectionFailed",
    "Discover",
    "Error",
    "ErrorCode",
    "Event",
    "EventFailed",
    "Frame",
    "LateFrame",
    "Outcome",
    "Pacer",
    "PayloadTooLarge",
    "Ping",
    "PingReceived",
    "PlanLimits",
    "Pong",
    "PongReceived",
    "ProtocolError",
    "RefState",
    "RelaySession",
    "RelayToAgentFrame",
    "RelayToAppFrame",
    "Reply",
    "ReplyMetadata",
    "ReplyReceived",
    "Requeued",
    "RetryDecision",
    "SendBatch",
    "SessionCounts",
    "SessionKey",
    "SlidingWindow",
    "Source",
    "Submission",
    "SubmissionAccepted",
    "SubmissionRejected",
    "Token",
    "TokenReceived",
    "UnhandledFrame",
    "Unknown",
    "UnknownEvent",
    "check_payload_size",
    "decide_retry",
    "describe_decision",
    "describe_error",
    "format_agent_session_key",
    "format_delay",
    "format_session_key",
    "normalize_code",
    "parse",
    "parse_agent_session_key",
    "parse_session_key",
    "payload_size",
    "plan_limits",
    "policy_for",
    "serialize",
    "thaw_json",
    "to_json",
]
