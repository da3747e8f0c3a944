"""relaybridge's settings: flat ``RELAYBRIDGE_*`` names read lazily from Django settings.

``relay_settings.MAX_MENTIONS`` reads ``settings.RELAYBRIDGE_MAX_MENTIONS`` at the
moment of access (so ``override_settings`` works) and falls back to the default in
:data:`DEFAULTS` -- the only place defaults live.

The two values that identify the app to Relay come only from the environment:

* ``RELAY_APP_TOKEN`` -- the app token (``rlk_…``), read by :func:`app_token`. It is
  never put in settings, a repr, a log line, an exception message or the database.
* ``RELAY_URL`` -- the full app endpoint URL, read by :func:`relay_url`.

Without a token, relaybridge talks to its local emulator (see :func:`uses_emulator`).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from typing import Any, Final

from django.conf import settings
from django.core.signals import setting_changed

from .protocol.pacing import STARTER, PlanLimits, plan_limits
from .protocol.redaction import redact_text

DEFAULT_RELAY_URL: Final = "wss://api.relay.ckgworks.com/v1/ws/app"
RELAY_DASHBOARD_URL: Final = "https://relay.ckgworks.com"

DEFAULTS: Final[dict[str, Any]] = {
    # The host's comment model ("app_label.Model", required: check relaybridge.E003
    # reports it unset) and the adapter that reads and writes it.
    "COMMENT_MODEL": None,
    "ADAPTER": "relaybridge.adapters.DefaultCommentAdapter",
    # Field names the default adapter uses (see adapters.DefaultCommentAdapter).
    "BODY_FIELD": "body",
    "THREAD_FIELD": "task",
    "AUTHOR_FIELD": "author",
    "AGENT_FIELD": "agent_id",
    "CREATED_FIELD": "created_at",
    "THREAD_TITLE_FIELD": "title",
    "THREAD_ID_PREFIX": None,  # None: the thread model's name, e.g. "task" -> "task-42"
    # relaybridge.contrib.django_comments: "app_label.model_name" of the models whose
    # comments take part (None: every model).
    "DJANGO_COMMENTS_MODELS": None,
    # Mentions.
    "MAX_MENTIONS": 5,
    "AGENTS": [],  # allow-list used until discovery has filled the cache
    "AGENT_HOPS": False,
    "AGENT_HOP_DEPTH": 1,
    # The loop backstop: at most AGENT_HOP_LIMIT runs started by agents' replies per
    # thread in any AGENT_HOP_WINDOW seconds; more are refused. None: no backstop.
    "AGENT_HOP_LIMIT": 10,
    "AGENT_HOP_WINDOW": 600.0,
    # Who may call which agent: {"agent_id": "app_label.codename"}; an agent not named
    # may be called by everyone (see adapters.CommentAdapter.can_mention).
    "AGENT_PERMISSIONS": {},
    # Limits on runs and tokens per person, agent or thread, per hour or day (a list of
    # rules; see relaybridge.quotas). Empty: no limits.
    "QUOTAS": [],
    # Payload.
    "HISTORY_COMMENTS": 20,
    # Relay connection and pacing.
    "PLAN": "starter",  # a name in relaybridge.protocol.pacing.PLANS
    "EVENTS_PER_MINUTE": None,  # None: the plan's value
    "EVENTS_PER_HOUR": None,
    "MAX_CONCURRENT": None,
    "AUTH_STYLE": "header",  # or "query" (?token=)
    # A PEM file of the certificate authorities a wss:// RELAY_URL is verified against
    # instead of the system's (a private CA, a TLS-inspecting proxy). None: the system's.
    "RELAY_CA_FILE": None,
    "HEARTBEAT_INTERVAL": 30.0,
    "HEARTBEAT_TIMEOUT": 5.0,
    # Streaming and the worker.
    "STREAM_FLUSH_MS": 50,
    "STALL_TIMEOUT": 120.0,
    # An answer whose connection closed and that hears nothing within this many seconds
    # of the next connection is asked again, at most RESEND_LOST times (0: fail it).
    "RESEND_GRACE": 10.0,
    "RESEND_LOST": 2,
    # Bounds on one answer: past either, the run fails (its text up to the cap is kept).
    "MAX_ANSWER_CHARS": 200_000,
    "MAX_ANSWER_SECONDS": 600.0,
    "SHUTDOWN_TIMEOUT": 30.0,
    "SWEEP_INTERVAL": 30.0,
    "REDISPATCH_AFTER": 60.0,  # a dispatch that never ran or never finished is redone then
    "OUTBOUND_CHANNEL": "relaybridge.outbound",
    # The CHANNEL_LAYERS alias that carries streams to pages (the intake stays on "default").
    "STREAM_LAYER": "default",
    # Where relaybridge.routing serves a thread's stream: "<STREAM_PATH><thread value>/".
    "STREAM_PATH": "ws/tasks/",
    # The pages' stream sockets: origins besides the page's own that may open one (each
    # exactly "scheme://host[:port]"), the most one person may hold open at once (None: no
    # cap), and how often an open one re-checks its session, its user and can_view.
    "ALLOWED_ORIGINS": [],
    "MAX_SOCKETS_PER_USER": 20,
    "SOCKET_RECHECK_INTERVAL": 60.0,
    "BUFFER_TTL": 3600,
    "REDIS_URL": None,  # None: stream buffer in process memory (embedded default only)
    "CACHE_ALIAS": "default",
    "AGENTS_CACHE_KEY": "relaybridge:agents",
    # Rendering.
    "RENDER_MAX_CHARS": 100_000,
    # Beyond either, a reply is shown as escaped plain text (the parser's cost is bounded).
    "RENDER_MAX_MARKUP": 10_000,
    "RENDER_MAX_DEPTH": 16,
    # The comment box's "will call" preview: requests per user, and the text it reads.
    "PREVIEW_RATE": "30/min",
    "PREVIEW_MAX_CHARS": 10_000,
    # Seconds after an agent's reply in which the asker's next comment without a
    # mention goes to that agent (relaybridge.follow_ups); None or 0: off.
    "FOLLOW_UP_WINDOW": None,
}

#: Settings that override one of the plan's limits, and the limit each overrides.
_LIMIT_OVERRIDES: Final = {
    "EVENTS_PER_MINUTE": "events_per_minute",
    "EVENTS_PER_HOUR": "events_per_hour",
    "MAX_CONCURRENT": "max_in_flight",
}

_RATE_PERIODS: Final = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hour": 3600}


def parse_rate(rate: str) -> tuple[int, int]:
    """``"30/min"`` as ``(30, 60)``: requests, and the window in seconds (s, min, hour)."""
    count, _, period = rate.strip().partition("/")
    seconds = _RATE_PERIODS.get(period.strip().lower())
    if seconds is None or not count.strip().isdigit() or int(count) < 1:
        raise ValueError(f"{rate!r} is not a rate like '30/min' (periods: s, min, hour)")
    return int(count), seconds


class RelaySettings:
    """Typed, lazy access to ``RELAYBRIDGE_*`` settings.

    Each value is read from Django's settings once and then kept: a page asks for some
    of them hundreds of times (per comment), and a setting left at its default missed
    in Django's settings on every one of those reads. The kept values are dropped when
    the settings object is replaced (``override_settings``, pytest-django's
    ``settings``, which replace it on every change) or ``setting_changed`` names a
    ``RELAYBRIDGE_*`` setting. An assignment to ``django.conf.settings`` that sends no
    ``setting_changed`` is not seen (nor is it by Django's own caches, its template
    engines for one).
    """

    def __init__(self) -> None:
        self._read: dict[str, Any] = {}
        self._holder: object = None  # the settings object the values were read from

    def get(self, name: str) -> Any:
        # The object behind django.conf.settings: override_settings swaps it.
        holder = settings._wrapped  # type: ignore[misc]
        if holder is not self._holder:
            self.forget()
            self._holder = holder
        try:
            return self._read[name]
        except KeyError:
            pass
        if name not in DEFAULTS:
            raise AttributeError(f"unknown relaybridge setting {name!r}")
        value = getattr(settings, f"RELAYBRIDGE_{name}", DEFAULTS[name])
        self._read[name] = value
        return value

    def forget(self) -> None:
        """Read every setting again at its next access."""
        # A new dict, not clear(): a thread reading the old one meanwhile is unharmed.
        self._read = {}

    def __repr__(self) -> str:
        return "<RelaySettings>"

    @property
    def COMMENT_MODEL(self) -> str | None:
        value = str(self.get("COMMENT_MODEL") or "").strip()
        return value or None

    @property
    def ADAPTER(self) -> str:
        return str(self.get("ADAPTER"))

    @property
    def BODY_FIELD(self) -> str:
        return str(self.get("BODY_FIELD"))

    @property
    def THREAD_FIELD(self) -> str:
        return str(self.get("THREAD_FIELD"))

    @property
    def AUTHOR_FIELD(self) -> str:
        return str(self.get("AUTHOR_FIELD"))

    @property
    def AGENT_FIELD(self) -> str:
        return str(self.get("AGENT_FIELD"))

    @property
    def CREATED_FIELD(self) -> str | None:
        value = self.get("CREATED_FIELD")
        return str(value) if value else None

    @property
    def THREAD_TITLE_FIELD(self) -> str | None:
        value = self.get("THREAD_TITLE_FIELD")
        return str(value) if value else None

    @property
    def THREAD_ID_PREFIX(self) -> str | None:
        value = self.get("THREAD_ID_PREFIX")
        return str(value) if value else None

    @property
    def DJANGO_COMMENTS_MODELS(self) -> list[str] | None:
        value = self.get("DJANGO_COMMENTS_MODELS")
        return None if value is None else [str(label) for label in value]

    @property
    def MAX_MENTIONS(self) -> int:
        return int(self.get("MAX_MENTIONS"))

    @property
    def AGENTS(self) -> list[str]:
        return [str(agent) for agent in self.get("AGENTS")]

    @property
    def AGENT_HOPS(self) -> bool:
        return bool(self.get("AGENT_HOPS"))

    @property
    def AGENT_HOP_DEPTH(self) -> int:
        return int(self.get("AGENT_HOP_DEPTH"))

    @property
    def AGENT_HOP_LIMIT(self) -> int | None:
        value = self.get("AGENT_HOP_LIMIT")
        return None if value is None else int(value)

    @property
    def AGENT_HOP_WINDOW(self) -> float:
        return float(self.get("AGENT_HOP_WINDOW"))

    @property
    def AGENT_PERMISSIONS(self) -> dict[str, str]:
        value = self.get("AGENT_PERMISSIONS") or {}
        return {str(agent): str(perm) for agent, perm in dict(value).items()}

    @property
    def HISTORY_COMMENTS(self) -> int:
        return int(self.get("HISTORY_COMMENTS"))

    @property
    def PLAN(self) -> str:
        return str(self.get("PLAN")).lower()

    @property
    def AUTH_STYLE(self) -> str:
        return str(self.get("AUTH_STYLE")).lower()

    @property
    def RELAY_CA_FILE(self) -> Any:
        """The CA file a ``wss://`` RELAY_URL is verified against (a path), or None:
        the system's. Checked (relaybridge.E006), not converted, here."""
        value = self.get("RELAY_CA_FILE")
        return None if value is None or value == "" else value

    @property
    def HEARTBEAT_INTERVAL(self) -> float:
        return float(self.get("HEARTBEAT_INTERVAL"))

    @property
    def HEARTBEAT_TIMEOUT(self) -> float:
        return float(self.get("HEARTBEAT_TIMEOUT"))

    @property
    def STREAM_FLUSH_MS(self) -> int:
        return int(self.get("STREAM_FLUSH_MS"))

    @property
    def STALL_TIMEOUT(self) -> float:
        return float(self.get("STALL_TIMEOUT"))

    @property
    def RESEND_GRACE(self) -> float:
        return float(self.get("RESEND_GRACE"))

    @property
    def RESEND_LOST(self) -> int:
        return int(self.get("RESEND_LOST"))

    @property
    def MAX_ANSWER_CHARS(self) -> int:
        return int(self.get("MAX_ANSWER_CHARS"))

    @property
    def MAX_ANSWER_SECONDS(self) -> float:
        return float(self.get("MAX_ANSWER_SECONDS"))

    @property
    def SHUTDOWN_TIMEOUT(self) -> float:
        return float(self.get("SHUTDOWN_TIMEOUT"))

    @property
    def SWEEP_INTERVAL(self) -> float:
        return float(self.get("SWEEP_INTERVAL"))

    @property
    def REDISPATCH_AFTER(self) -> float:
        return float(self.get("REDISPATCH_AFTER"))

    @property
    def OUTBOUND_CHANNEL(self) -> str:
        return str(self.get("OUTBOUND_CHANNEL"))

    @property
    def STREAM_LAYER(self) -> str:
        return str(self.get("STREAM_LAYER"))

    @property
    def STREAM_PATH(self) -> str:
        """The stream sockets' path prefix, without a leading and with a trailing slash."""
        value = str(self.get("STREAM_PATH")).strip("/")
        return f"{value}/" if value else ""

    @property
    def ALLOWED_ORIGINS(self) -> list[str]:
        return [str(origin) for origin in self.get("ALLOWED_ORIGINS")]

    @property
    def MAX_SOCKETS_PER_USER(self) -> int | None:
        value = self.get("MAX_SOCKETS_PER_USER")
        return None if value is None else int(value)

    @property
    def SOCKET_RECHECK_INTERVAL(self) -> float:
        return float(self.get("SOCKET_RECHECK_INTERVAL"))

    @property
    def BUFFER_TTL(self) -> int:
        return int(self.get("BUFFER_TTL"))

    @property
    def REDIS_URL(self) -> str | None:
        value = self.get("REDIS_URL")
        return str(value) if value else None

    @property
    def CACHE_ALIAS(self) -> str:
        return str(self.get("CACHE_ALIAS"))

    @property
    def AGENTS_CACHE_KEY(self) -> str:
        return str(self.get("AGENTS_CACHE_KEY"))

    @property
    def RENDER_MAX_CHARS(self) -> int:
        return int(self.get("RENDER_MAX_CHARS"))

    @property
    def RENDER_MAX_MARKUP(self) -> int:
        return int(self.get("RENDER_MAX_MARKUP"))

    @property
    def RENDER_MAX_DEPTH(self) -> int:
        return int(self.get("RENDER_MAX_DEPTH"))

    @property
    def PREVIEW_RATE(self) -> tuple[int, int]:
        """``RELAYBRIDGE_PREVIEW_RATE`` ("30/min") as (requests, seconds); ValueError if bad."""
        return parse_rate(str(self.get("PREVIEW_RATE")))

    @property
    def PREVIEW_MAX_CHARS(self) -> int:
        return int(self.get("PREVIEW_MAX_CHARS"))

    @property
    def FOLLOW_UP_WINDOW(self) -> float:
        """``RELAYBRIDGE_FOLLOW_UP_WINDOW`` in seconds; 0.0 when off (None or 0)."""
        value = self.get("FOLLOW_UP_WINDOW")
        return float(value) if value else 0.0

    def plan_limits(self) -> PlanLimits:
        """The pacing limits: the plan's values, each overridable on its own.

        The plans themselves live in :mod:`relaybridge.protocol.pacing`. An unknown
        plan name falls back to ``starter`` (check ``relaybridge.E006`` reports it);
        an override below 1 raises ``ValueError``.
        """
        try:
            limits = plan_limits(self.PLAN)
        except ValueError:
            limits = STARTER
        overrides = {
            field: int(value)
            for name, field in _LIMIT_OVERRIDES.items()
            if (value := self.get(name)) is not None
        }
        return replace(limits, **overrides)


relay_settings = RelaySettings()


def _setting_changed(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("RELAYBRIDGE_"):
        relay_settings.forget()


setting_changed.connect(_setting_changed, dispatch_uid="relaybridge.conf.setting_changed")


def app_token() -> str | None:
    """The app token from ``RELAY_APP_TOKEN``, or None when unset or blank."""
    token = os.environ.get("RELAY_APP_TOKEN", "").strip()
    return token or None


def relay_url() -> str:
    """Relay's app endpoint from ``RELAY_URL`` (default: Relay's hosted endpoint)."""
    return os.environ.get("RELAY_URL", "").strip() or DEFAULT_RELAY_URL


def uses_emulator() -> bool:
    """True when no app token is configured: the local emulator stands in for Relay."""
    return app_token() is None


def redact(text: str) -> str:
    """``text`` with anything shaped like a Relay token (and the app token) blanked.

    Applied to every message relaybridge stores or shows that came from outside,
    because an error string is the usual way a secret leaks into a log. Tokens glued
    to a word and tokens spelled with HTML character references or Markdown escapes
    are blanked too (see :mod:`relaybridge.protocol.redaction`).
    """
    return redact_text(text, app_token())


#: Line breaks, terminal escapes and other control characters (C0, C1, U+2028/9).
_CONTROL_CHARACTERS: Final = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def loggable(value: object, limit: int = 200) -> str:
    """``value`` (text that came from outside) made safe for one log line.

    Redacted, cut at ``limit`` characters, and with control characters escaped
    (``\\n``, ``\\x1b``): text from Relay can then neither forge a log line nor
    hide one behind a terminal escape.
    """
    text = redact(str(value))
    if len(text) > limit:
        text = text[:limit] + "…"
    return _CONTROL_CHARACTERS.sub(lambda match: ascii(match.group(0))[1:-1], text)
