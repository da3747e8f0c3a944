"""System checks (``manage.py check``), registered by ``AppConfig.ready``.

=====================  ===================================================================
``relaybridge.W001``   ``RELAY_APP_TOKEN`` is not set: the local emulator stands in for Relay.
``relaybridge.W002``   A Redis channel layer without ``RELAYBRIDGE_REDIS_URL``: stream
                       snapshots stay in one process, so pages served elsewhere miss them.
``relaybridge.W003``   A Redis channel layer whose hosts leave redis-py 8's 5 s socket
                       timeout in place: every idle ``receive`` fails after 5 s.
``relaybridge.E001``   ``RELAY_URL`` is not a ``wss://`` URL while ``DEBUG`` is off.
``relaybridge.E002``   No ``CHANNEL_LAYERS`` default: runs cannot reach the relay worker.
``relaybridge.E003``   ``RELAYBRIDGE_COMMENT_MODEL`` is unset or names no installed model,
                       or the model lacks what the adapter needs.
``relaybridge.E004``   A Relay token is in Django settings; tokens belong in the environment.
``relaybridge.E005``   ``RELAYBRIDGE_ADAPTER`` cannot be imported or is not a ``CommentAdapter``.
``relaybridge.E006``   A ``RELAYBRIDGE_*`` setting has an invalid value (among them a
                       quota rule or an agent's permission that cannot be read).
``relaybridge.E007``   ``RELAY_APP_TOKEN`` holds an agent token (``rla_…``), not an app token.
``relaybridge.E008``   ``RELAYBRIDGE_STREAM_LAYER`` names a layer ``CHANNEL_LAYERS`` lacks.
=====================  ===================================================================

No check message ever contains a token's value.
"""

from __future__ import annotations

import os
import re
import ssl
from typing import Any

from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext as _

from .comment_model import REMEDY, comment_model_problem
from .conf import app_token, relay_settings, relay_url
from .protocol.pacing import PLANS
from .quotas import quota_problems
from .rendering import PARSER_MAX_NESTING
from .socket_guard import parse_origin

_TOKEN_VALUE = re.compile(r"^rl[ak]_")


def register_checks() -> None:
    for check in (
        check_relay_credentials,
        check_relay_url,
        check_channel_layer,
        check_comment_model,
        check_adapter,
        check_tokens_not_in_settings,
        check_setting_values,
    ):
        checks.register(check, "relaybridge")


def check_relay_credentials(**kwargs: Any) -> list[checks.CheckMessage]:
    token = app_token()
    if token is None:
        return [
            checks.Warning(
                "RELAY_APP_TOKEN is not set: relaybridge uses its local Relay emulator.",
                hint="Set RELAY_APP_TOKEN in the environment to talk to the real Relay.",
                id="relaybridge.W001",
            )
        ]
    if token.startswith("rla_"):
        return [
            checks.Error(
                "RELAY_APP_TOKEN holds an agent token (rla_...); the app needs its app token.",
                hint="Use the app token (rlk_...) from Relay's dashboard; agent tokens "
                "belong to the agents.",
                id="relaybridge.E007",
            )
        ]
    return []


def check_relay_url(**kwargs: Any) -> list[checks.CheckMessage]:
    if settings.DEBUG or relay_url().lower().startswith("wss://"):
        return []
    return [
        checks.Error(
            "RELAY_URL must be a wss:// URL when DEBUG is off.",
            hint="The app token travels on this connection; only use ws:// for local testing.",
            id="relaybridge.E001",
        )
    ]


def check_channel_layer(**kwargs: Any) -> list[checks.CheckMessage]:
    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    layers = layers if isinstance(layers, dict) else {}
    default = layers.get("default")
    if not default or not default.get("BACKEND"):
        return [
            checks.Error(
                "CHANNEL_LAYERS has no 'default' layer.",
                hint="Use channels_redis.core.RedisChannelLayer (or the in-memory layer "
                "for a single process).",
                id="relaybridge.E002",
            )
        ]
    alias = relay_settings.STREAM_LAYER
    stream = layers.get(alias)
    if not stream or not stream.get("BACKEND"):
        return [
            checks.Error(
                f"RELAYBRIDGE_STREAM_LAYER is {alias!r}, which CHANNEL_LAYERS does not define.",
                hint="Name a layer of CHANNEL_LAYERS, or leave the setting out to stream "
                "on 'default'.",
                id="relaybridge.E008",
            )
        ]
    used = {"default": default, alias: stream}
    if not any("redis" in str(layer["BACKEND"]).lower() for layer in used.values()):
        return []
    problems: list[checks.CheckMessage] = []
    if not relay_settings.REDIS_URL:
        problems.append(
            checks.Warning(
                "A Redis channel layer is configured but RELAYBRIDGE_REDIS_URL is not set.",
                hint="Set RELAYBRIDGE_REDIS_URL so every process shares the streamed text.",
                id="relaybridge.W002",
            )
        )
    # Only the list-based layer blocks on Redis; the Pub/Sub layer polls its socket.
    if _redis_py_major() >= 8 and any(
        str(layer["BACKEND"]).startswith("channels_redis.core")
        and _hosts_keep_default_socket_timeout(layer)
        for layer in used.values()
    ):
        problems.append(
            checks.Warning(
                "The Redis channel layer uses redis-py 8's default 5 s socket timeout, which "
                "ends every channel-layer receive that waits longer than 5 s with an error "
                "(stream sockets drop, the relay worker's intake restarts).",
                hint='Give each host a longer timeout, e.g. "hosts": [{"address": REDIS_URL, '
                '"socket_timeout": 30}], or None to wait without limit.',
                id="relaybridge.W003",
            )
        )
    return problems


def _redis_py_major() -> int:
    try:
        import redis
    except ImportError:
        return 0
    major = str(getattr(redis, "__version__", "0")).split(".", 1)[0]
    return int(major) if major.isdigit() else 0


def _hosts_keep_default_socket_timeout(layer: dict[str, Any]) -> bool:
    """True when some host of a channels_redis layer sets no ``socket_timeout`` of its own.

    channels_redis blocks on ``BZPOPMIN`` for 5 s; a socket timeout of 5 s or less
    (or the default) cuts those waits off.
    """
    config = layer.get("CONFIG") or {}
    hosts = config.get("hosts") or [("localhost", 6379)]
    for host in hosts:
        if not isinstance(host, dict):
            return True
        timeout = host.get("socket_timeout", 0)
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 5):
            return True
    return False


def check_comment_model(**kwargs: Any) -> list[checks.CheckMessage]:
    problem = comment_model_problem()
    if problem is None:
        return []
    return [checks.Error(problem, hint=_(REMEDY), id="relaybridge.E003")]


def check_adapter(**kwargs: Any) -> list[checks.CheckMessage]:
    from .adapters import get_adapter

    try:
        adapter = get_adapter()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="relaybridge.E005")]
    if comment_model_problem() is not None:
        return []  # check_comment_model says what is wrong; the adapter cannot be asked
    return [
        checks.Error(
            f"RELAYBRIDGE_COMMENT_MODEL: {problem}",
            hint="Point RELAYBRIDGE_COMMENT_MODEL and the field settings at your comment "
            "model, or set RELAYBRIDGE_ADAPTER to your own adapter class.",
            id="relaybridge.E003",
        )
        for problem in adapter.check()
    ]


def check_tokens_not_in_settings(**kwargs: Any) -> list[checks.CheckMessage]:
    offending = []
    for name in dir(settings):
        if not name.isupper() or not name.startswith(("RELAY_", "RELAYBRIDGE_")):
            continue
        value = getattr(settings, name, None)
        looks_like_token = isinstance(value, str) and _TOKEN_VALUE.match(value)
        if "TOKEN" in name or looks_like_token:
            offending.append(name)
    return [
        checks.Error(
            f"settings.{name} holds a Relay token (or is named like one).",
            hint="Remove it: the app token comes only from the RELAY_APP_TOKEN environment "
            "variable, and agent tokens never belong to the app.",
            id="relaybridge.E004",
        )
        for name in offending
    ]


def check_setting_values(**kwargs: Any) -> list[checks.CheckMessage]:
    problems = []
    try:
        if relay_settings.MAX_MENTIONS < 1:
            problems.append("RELAYBRIDGE_MAX_MENTIONS must be at least 1")
        if relay_settings.AGENT_HOP_DEPTH < 0:
            problems.append("RELAYBRIDGE_AGENT_HOP_DEPTH must not be negative")
        if relay_settings.HISTORY_COMMENTS < 0:
            problems.append("RELAYBRIDGE_HISTORY_COMMENTS must not be negative")
        hop_limit = relay_settings.AGENT_HOP_LIMIT
        if hop_limit is not None and hop_limit < 0:
            problems.append("RELAYBRIDGE_AGENT_HOP_LIMIT must not be negative (None: no limit)")
        if relay_settings.AGENT_HOP_WINDOW <= 0:
            problems.append("RELAYBRIDGE_AGENT_HOP_WINDOW must be positive")
        if relay_settings.PLAN.strip() not in PLANS:
            problems.append(f"RELAYBRIDGE_PLAN must be one of {sorted(PLANS)}")
        if relay_settings.AUTH_STYLE not in ("header", "query"):
            problems.append("RELAYBRIDGE_AUTH_STYLE must be 'header' or 'query'")
        if relay_settings.STREAM_FLUSH_MS < 0 or relay_settings.STALL_TIMEOUT <= 0:
            problems.append("RELAYBRIDGE_STREAM_FLUSH_MS/STALL_TIMEOUT must be positive")
        if relay_settings.RESEND_GRACE <= 0 or relay_settings.RESEND_LOST < 0:
            problems.append(
                "RELAYBRIDGE_RESEND_GRACE must be positive and RESEND_LOST not negative"
            )
        if relay_settings.MAX_ANSWER_CHARS < 1:
            problems.append("RELAYBRIDGE_MAX_ANSWER_CHARS must be at least 1")
        if relay_settings.MAX_ANSWER_SECONDS <= 0:
            problems.append("RELAYBRIDGE_MAX_ANSWER_SECONDS must be positive")
        if relay_settings.BUFFER_TTL <= 0:
            problems.append("RELAYBRIDGE_BUFFER_TTL must be positive")
        for name in ("EVENTS_PER_MINUTE", "EVENTS_PER_HOUR", "MAX_CONCURRENT"):
            value = relay_settings.get(name)
            if value is not None and int(value) < 1:
                problems.append(f"RELAYBRIDGE_{name} must be >= 1 (or None: the plan's value)")
        if relay_settings.RENDER_MAX_CHARS < 1 or relay_settings.RENDER_MAX_MARKUP < 0:
            problems.append("RELAYBRIDGE_RENDER_MAX_CHARS/RENDER_MAX_MARKUP must be positive")
        if not 1 <= relay_settings.RENDER_MAX_DEPTH < PARSER_MAX_NESTING:
            problems.append(
                f"RELAYBRIDGE_RENDER_MAX_DEPTH must be from 1 to {PARSER_MAX_NESTING - 1}"
            )
        if relay_settings.PREVIEW_MAX_CHARS < 1:
            problems.append("RELAYBRIDGE_PREVIEW_MAX_CHARS must be positive")
        try:
            relay_settings.PREVIEW_RATE  # noqa: B018 -- parsed to be checked
        except ValueError as exc:
            problems.append(f"RELAYBRIDGE_PREVIEW_RATE: {exc}")
        cap = relay_settings.MAX_SOCKETS_PER_USER
        if cap is not None and cap < 1:
            problems.append("RELAYBRIDGE_MAX_SOCKETS_PER_USER must be at least 1 (None: no cap)")
        if relay_settings.SOCKET_RECHECK_INTERVAL <= 0:
            problems.append("RELAYBRIDGE_SOCKET_RECHECK_INTERVAL must be positive")
        problems.extend(_allowed_origin_problems())
        problems.extend(_permission_problems(relay_settings.get("AGENT_PERMISSIONS")))
        problems.extend(quota_problems(relay_settings.get("QUOTAS")))
        if relay_settings.FOLLOW_UP_WINDOW < 0:
            problems.append("RELAYBRIDGE_FOLLOW_UP_WINDOW must be None, 0 (off) or positive")
        if not all(isinstance(agent, str) for agent in relay_settings.get("AGENTS")):
            problems.append("RELAYBRIDGE_AGENTS must be a list of agent id strings")
        ca_problem = relay_ca_file_problem(relay_settings.RELAY_CA_FILE)
        if ca_problem is not None:
            problems.append(ca_problem)
    except (TypeError, ValueError) as exc:
        problems.append(f"a RELAYBRIDGE_* setting has the wrong type ({exc})")
    return [checks.Error(problem, id="relaybridge.E006") for problem in problems]


def relay_ca_file_problem(ca_file: Any) -> str | None:
    """Why ``RELAYBRIDGE_RELAY_CA_FILE`` cannot verify Relay, or None (unset or usable)."""
    if ca_file is None:
        return None
    if not isinstance(ca_file, str | os.PathLike):
        return "RELAYBRIDGE_RELAY_CA_FILE must be a file path (or None: the system's CAs)"
    try:
        ssl.create_default_context(cafile=ca_file)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return f"RELAYBRIDGE_RELAY_CA_FILE holds no usable certificate ({reason})"
    return None


def _allowed_origin_problems() -> list[str]:
    origins = relay_settings.get("ALLOWED_ORIGINS")
    if isinstance(origins, str) or not isinstance(origins, list | tuple):
        return ["RELAYBRIDGE_ALLOWED_ORIGINS must be a list of origins"]
    return [
        f"RELAYBRIDGE_ALLOWED_ORIGINS: {origin!r} is not an origin"
        ' ("scheme://host[:port]" with http or https, no path, no wildcard)'
        for origin in origins
        if not isinstance(origin, str) or "*" in origin or parse_origin(origin) is None
    ]


def _permission_problems(value: Any) -> list[str]:
    if not isinstance(value, dict):
        return ["RELAYBRIDGE_AGENT_PERMISSIONS must be a dict of agent id -> 'app_label.codename'"]
    return [
        f"RELAYBRIDGE_AGENT_PERMISSIONS[{agent!r}] must be a permission 'app_label.codename'"
        for agent, perm in value.items()
        if not isinstance(agent, str)
        or not isinstance(perm, str)
        or perm.count(".") != 1
        or not all(perm.split("."))
    ]


def separate_worker_layer_problem() -> str | None:
    """Why ``relay_worker`` cannot work as its own process with these channel layers.

    The in-memory layer reaches only code in the same process: a relay worker of its
    own would hear no run handed over by the web or Celery processes (they would wait
    for its sweep) and its pushes would reach no page. None when every layer
    relaybridge uses can be shared.
    """
    from channels.layers import InMemoryChannelLayer
    from django.utils.module_loading import import_string

    layers = getattr(settings, "CHANNEL_LAYERS", None) or {}
    in_process = []
    for alias in dict.fromkeys(("default", relay_settings.STREAM_LAYER)):
        backend = (layers.get(alias) or {}).get("BACKEND") if isinstance(layers, dict) else None
        try:
            backend_class = import_string(str(backend)) if backend else None
        except ImportError:
            continue  # relaybridge.E002/E008 or Channels itself report it
        if isinstance(backend_class, type) and issubclass(backend_class, InMemoryChannelLayer):
            in_process.append(alias)
    if not in_process:
        return None
    return _(
        "relay_worker cannot run as a process of its own with the in-memory channel layer "
        "(CHANNEL_LAYERS %(aliases)s): runs handed over by the web and Celery processes "
        "would never reach it, and its pushes would reach no page. Give every process a "
        "shared layer (channels_redis: README, step 5 of installing), or run "
        "`python manage.py relay_devserver`, which serves the site and the relay worker in "
        "one process."
    ) % {"aliases": ", ".join(repr(alias) for alias in in_process)}
