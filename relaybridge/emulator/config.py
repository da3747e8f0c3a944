"""Options of the local Relay: token tables, plan, timing and failure modes.

Identity always comes from the token tables built here. A bare token given on the
command line gets a default id derived once, at configuration time, from Relay's
token format (``rlk_{app_id}_{random}``); lookups never split a token, because ids
may themselves contain ``_``. Pass ``TOKEN=ID`` to state the id explicitly.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from .faults import DeliveryFaults
from .limits import STARTER, Clock, Plan
from .load import LoadProfile

APP_TOKEN_PREFIX = "rlk_"
AGENT_TOKEN_PREFIX = "rla_"

#: Used when neither ``--app-token`` nor ``RELAY_APP_TOKEN`` gives one: a local,
#: well-known development credential that only this emulator accepts.
DEFAULT_APP_TOKEN = "rlk_demo_localemulator"
DEFAULT_APP_ID = "demo"


class BadTokenMode(enum.StrEnum):
    """How a bad or revoked token is refused (protocol §1)."""

    #: Finish the upgrade, send an UNAUTHORIZED error frame, close with 4001.
    CLOSE_4001 = "close_4001"
    #: Refuse the upgrade with HTTP 401.
    HTTP_401 = "http_401"


def default_id(token: str, prefix: str) -> str | None:
    """The id embedded in a token of Relay's format, or ``None`` if it has none.

    ``rlk_my_app_x9`` gives ``my_app``: the random part is taken to be the last
    ``_``-separated piece. Ambiguous tokens should be given as ``TOKEN=ID``.
    """
    if not token.startswith(prefix):
        return None
    middle, sep, random_part = token[len(prefix) :].rpartition("_")
    if not sep or not middle or not random_part:
        return None
    return middle


def parse_token_spec(spec: str, prefix: str) -> tuple[str, str | None]:
    """Split ``TOKEN=ID`` (or a bare ``TOKEN``) into the token and its id, if known."""
    token, sep, ident = spec.rpartition("=")
    if sep and token and ident:
        return token, ident
    return spec, default_id(spec, prefix)


def build_token_table(specs: Iterable[str], prefix: str, fallback: str) -> dict[str, str]:
    """Map each token to its id; tokens without a derivable id get ``fallback``, ``fallback2``…"""
    table: dict[str, str] = {}
    unnamed = 0
    for spec in specs:
        token, ident = parse_token_spec(spec.strip(), prefix)
        if not token:
            raise ValueError("empty token")
        if ident is None:
            unnamed += 1
            ident = fallback if unnamed == 1 else f"{fallback}{unnamed}"
        table[token] = ident
    return table


def parse_allow_spec(spec: str) -> tuple[str, frozenset[str]]:
    """``APP_ID=agent1,agent2`` → the app id and the agents it may reach."""
    app_id, sep, agents = spec.partition("=")
    if not sep or not app_id:
        raise ValueError(f"expected APP_ID=AGENT[,AGENT…], got {spec!r}")
    return app_id, frozenset(a.strip() for a in agents.split(",") if a.strip())


@dataclass
class EmulatorConfig:
    """Everything the emulator needs to behave like one Relay deployment.

    ``app_tokens`` maps app token → app id and ``agent_tokens`` agent token →
    agent id. ``allowed_agents`` maps an app id to the only agents it may reach;
    apps absent from it may reach every agent.
    """

    host: str = "127.0.0.1"
    port: int = 0
    app_tokens: Mapping[str, str] = field(
        default_factory=lambda: {DEFAULT_APP_TOKEN: DEFAULT_APP_ID}
    )
    agent_tokens: Mapping[str, str] = field(default_factory=dict)
    allowed_agents: Mapping[str, frozenset[str]] = field(default_factory=dict)
    plan: Plan = STARTER
    bad_token: BadTokenMode = BadTokenMode.CLOSE_4001
    #: Accept events for offline agents and hold them until the agent connects,
    #: instead of refusing them with AGENT_OFFLINE (protocol §7 allows both).
    queue_offline: bool = False
    #: Base delay between streamed tokens of the built-in agents.
    token_delay_ms: float = 30.0
    #: Per-agent override of the base delay (e.g. make ``slow`` fast in tests).
    agent_delay_ms: Mapping[str, float] = field(default_factory=dict)
    #: Interval of the JSON ``ping`` frames Relay sends to connected agents.
    agent_ping_interval_s: float = 30.0
    #: An agent connection that sends nothing (no ``pong``, no frame) for this long
    #: after a ping is dropped; once the agent has no connection left, its open events
    #: fail with AGENT_OFFLINE. ``None``: never dropped.
    agent_pong_timeout_s: float | None = 10.0
    #: Interval of the ``ping`` frames Relay sends to app connections; an app
    #: connection silent for ``app_pong_timeout_s`` after one is closed (``None``: off).
    app_ping_interval_s: float | None = 30.0
    app_pong_timeout_s: float = 10.0
    #: Relay answers AGENT_TIMEOUT itself when an accepted event sees no terminal
    #: frame for this long, as a service that protects itself; ``None`` keeps it open
    #: forever (what ``stall`` tests of a client's own watchdog use).
    event_timeout_s: float | None = 300.0
    #: Built-in agent ids to offer; ``None`` means all of them.
    builtin_agents: frozenset[str] | None = None
    #: Offer the benchmark agent ``load`` with these defaults (``None``: not offered).
    load_agent: LoadProfile | None = None
    #: Duplicated, delayed and reordered frames, second replies (off by default).
    delivery_faults: DeliveryFaults = field(default_factory=DeliveryFaults)
    #: Serve ``wss://`` with this certificate (PEM, chain first) and its private key
    #: (``None``: plain ``ws://``), as the real Relay does; for trying TLS locally.
    tls_cert: str | None = None
    tls_key: str | None = None
    #: Time source for the rate-limit windows; tests inject a fake one.
    clock: Clock = time.monotonic

    def __post_init__(self) -> None:
        if not self.app_tokens:
            raise ValueError("at least one app token is required")
        overlap = set(self.app_tokens) & set(self.agent_tokens)
        if overlap:
            raise ValueError("a token cannot be both an app token and an agent token")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both a certificate and its key")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def first_app_token(self) -> str:
        return next(iter(self.app_tokens))

    def delay_for(self, agent_id: str, factor: float) -> float:
        """Seconds between two tokens of ``agent_id`` (scaled by its own factor)."""
        if agent_id in self.agent_delay_ms:
            return self.agent_delay_ms[agent_id] / 1000.0
        return self.token_delay_ms * factor / 1000.0
