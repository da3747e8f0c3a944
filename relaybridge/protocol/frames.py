"""One frozen dataclass per Relay frame type (relay-protocol.md §2, §3, §8).

Every class has a class-level ``type`` naming its wire ``type``. The same wire
type can mean different frames in different directions (an app's ``event`` is
not the event Relay hands an agent), which is why the agent-side frames have
their own classes and :func:`relaybridge.protocol.codec.parse` takes a source.

JSON objects inside frames (payloads, metadata extras, unknown frames' fields)
are stored deep-frozen, see :mod:`relaybridge.protocol.jsonvalue`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, TypeAlias

from .codes import normalize_code
from .errors import ProtocolError
from .jsonvalue import EMPTY_OBJECT, freeze_attribute

#: A frozen JSON object (``payload``, ``metadata.extra``, ``Unknown.data``).
JSONObject: TypeAlias = Mapping[str, Any]


# --- app → Relay ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Submit work to one agent. Relay mints the event id and answers ``accepted``."""

    type: ClassVar[str] = "event"
    agent_id: str
    thread_id: str
    payload: JSONObject

    def __post_init__(self) -> None:
        freeze_attribute(self, "payload")


@dataclass(frozen=True, slots=True)
class Discover:
    """Ask which agents this app may reach; answered by :class:`Agents`."""

    type: ClassVar[str] = "discover"


@dataclass(frozen=True, slots=True)
class Ping:
    """Heartbeat, in any direction; always answered by :class:`Pong`."""

    type: ClassVar[str] = "ping"


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to :class:`Ping`."""

    type: ClassVar[str] = "pong"


# --- Relay → app ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accepted:
    """Relay took an event. It carries no reference to what we sent (§6)."""

    type: ClassVar[str] = "accepted"
    event_id: str
    agent_id: str
    session_key: str
    status: str = "accepted"


@dataclass(frozen=True, slots=True)
class AgentInfo:
    """One agent the app may reach. Discovery says nothing about presence."""

    agent_id: str
    name: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class Agents:
    """Answer to :class:`Discover`."""

    type: ClassVar[str] = "agents"
    agents: tuple[AgentInfo, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "agents", tuple(self.agents))


@dataclass(frozen=True, slots=True)
class Token:
    """One streamed fragment; fragments carry their own spaces (join with ``""``)."""

    type: ClassVar[str] = "token"
    event_id: str
    agent_id: str
    token: str


#: Metadata keys with a typed field on :class:`ReplyMetadata`.
METADATA_FIELDS = ("tokens_used", "model", "latency_ms", "session_key")


@dataclass(frozen=True, slots=True)
class ReplyMetadata:
    """What Relay reports about a reply. Every key may be missing.

    ``extra`` holds every other key, including a known key whose value had the
    wrong type: metadata is informational and never a reason to lose a reply.
    """

    tokens_used: int | None = None
    model: str | None = None
    latency_ms: int | None = None
    session_key: str | None = None
    extra: JSONObject = field(default_factory=lambda: EMPTY_OBJECT)

    def __post_init__(self) -> None:
        freeze_attribute(self, "extra")
        for name in METADATA_FIELDS:
            # One key cannot hold two values on the wire.
            if name in self.extra and getattr(self, name) is not None:
                raise ProtocolError(f"metadata key {name!r} is both a field and an extra")

    def with_fields(self, **changes: Any) -> ReplyMetadata:
        """A copy with typed fields changed (e.g. Relay adding ``session_key``).

        An extra key of the same name, a malformed value the field replaces, is dropped.
        """
        unknown = set(changes) - set(METADATA_FIELDS)
        if unknown:
            raise TypeError(f"not metadata fields: {', '.join(sorted(unknown))}")
        extra = {key: value for key, value in self.extra.items() if key not in changes}
        return replace(self, **changes, extra=extra)


@dataclass(frozen=True, slots=True)
class Reply:
    """Terminal success. Its text is authoritative: it replaces the streamed text.

    ``done`` is ``None`` when Relay did not send it; a reply is terminal either way.
    """

    type: ClassVar[str] = "reply"
    event_id: str
    agent_id: str
    thread_id: str
    reply: str
    payload: JSONObject = field(default_factory=lambda: EMPTY_OBJECT)
    metadata: ReplyMetadata = field(default_factory=ReplyMetadata)
    done: bool | None = None

    def __post_init__(self) -> None:
        freeze_attribute(self, "payload")


@dataclass(frozen=True, slots=True)
class Error:
    """An error. ``event_id`` is ``None`` when the event was refused before acceptance.

    ``code`` is kept exactly as received; :attr:`normalized_code` is what policy uses.
    """

    type: ClassVar[str] = "error"
    event_id: str | None
    agent_id: str | None
    error: str
    code: str

    @property
    def normalized_code(self) -> str:
        return normalize_code(self.code)


# --- Relay ↔ agent (§8) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """Relay → agent: one event to answer. ``session_key`` is ``relay:{app}:{thread}``."""

    type: ClassVar[str] = "event"
    event_id: str
    app_id: str
    thread_id: str
    session_key: str
    payload: JSONObject

    def __post_init__(self) -> None:
        freeze_attribute(self, "payload")


@dataclass(frozen=True, slots=True)
class AgentToken:
    """Agent → Relay: one streamed fragment."""

    type: ClassVar[str] = "token"
    event_id: str
    token: str


@dataclass(frozen=True, slots=True)
class AgentReply:
    """Agent → Relay: the answer. Relay rewrites it into a :class:`Reply` for the app."""

    type: ClassVar[str] = "reply"
    event_id: str
    content: str
    metadata: ReplyMetadata = field(default_factory=ReplyMetadata)
    done: bool | None = None


@dataclass(frozen=True, slots=True)
class AgentError:
    """Agent → Relay: the agent could not answer (``AGENT_ERROR``, ``AGENT_TIMEOUT``)."""

    type: ClassVar[str] = "error"
    event_id: str
    error: str
    code: str

    @property
    def normalized_code(self) -> str:
        return normalize_code(self.code)


# --- any direction ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Unknown:
    """A frame whose ``type`` this direction does not define. Log it and move on.

    ``data`` holds every field except ``type``.
    """

    type: str
    data: JSONObject = field(default_factory=lambda: EMPTY_OBJECT)

    def __post_init__(self) -> None:
        freeze_attribute(self, "data")
        if "type" in self.data:
            raise ProtocolError("Unknown.data must not contain 'type'")


AppToRelayFrame: TypeAlias = Event | Discover | Ping | Pong | Unknown
RelayToAppFrame: TypeAlias = Accepted | Agents | Token | Reply | Error | Ping | Pong | Unknown
RelayToAgentFrame: TypeAlias = AgentEvent | Ping | Pong | Unknown
AgentToRelayFrame: TypeAlias = AgentToken | AgentReply | AgentError | Ping | Pong | Unknown
Frame: TypeAlias = AppToRelayFrame | RelayToAppFrame | RelayToAgentFrame | AgentToRelayFrame
