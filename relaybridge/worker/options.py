"""The relay worker's tunables, read from ``RELAYBRIDGE_*`` settings.

The defaults are those of :mod:`relaybridge.conf` (the only place they are written);
nothing in the worker reads a setting past these options.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from ..conf import DEFAULTS, relay_settings
from ..protocol import PlanLimits
from .handshake import AuthStyle


@dataclass
class WorkerOptions:
    url: str
    token: str = field(repr=False)
    auth_style: AuthStyle = DEFAULTS["AUTH_STYLE"]
    ca_file: str | None = DEFAULTS["RELAY_CA_FILE"]
    limits: PlanLimits | None = None
    flush_ms: int = DEFAULTS["STREAM_FLUSH_MS"]
    stall_timeout: float = DEFAULTS["STALL_TIMEOUT"]
    resend_grace: float = DEFAULTS["RESEND_GRACE"]
    resend_lost: int = DEFAULTS["RESEND_LOST"]
    max_answer_chars: int = DEFAULTS["MAX_ANSWER_CHARS"]
    max_answer_seconds: float = DEFAULTS["MAX_ANSWER_SECONDS"]
    shutdown_timeout: float = DEFAULTS["SHUTDOWN_TIMEOUT"]
    sweep_interval: float = DEFAULTS["SWEEP_INTERVAL"]
    redispatch_after: float = DEFAULTS["REDISPATCH_AFTER"]
    heartbeat_interval: float = DEFAULTS["HEARTBEAT_INTERVAL"]
    heartbeat_timeout: float = DEFAULTS["HEARTBEAT_TIMEOUT"]
    intake_channel: str = DEFAULTS["OUTBOUND_CHANNEL"]

    @classmethod
    def from_settings(cls, url: str, token: str) -> WorkerOptions:
        style = relay_settings.AUTH_STYLE
        ca_file = relay_settings.RELAY_CA_FILE
        return cls(
            url=url,
            token=token,
            auth_style="query" if style == "query" else "header",
            ca_file=None if ca_file is None else os.fspath(ca_file),
            limits=relay_settings.plan_limits(),
            flush_ms=relay_settings.STREAM_FLUSH_MS,
            stall_timeout=relay_settings.STALL_TIMEOUT,
            resend_grace=relay_settings.RESEND_GRACE,
            resend_lost=relay_settings.RESEND_LOST,
            max_answer_chars=relay_settings.MAX_ANSWER_CHARS,
            max_answer_seconds=relay_settings.MAX_ANSWER_SECONDS,
            shutdown_timeout=relay_settings.SHUTDOWN_TIMEOUT,
            sweep_interval=relay_settings.SWEEP_INTERVAL,
            redispatch_after=relay_settings.REDISPATCH_AFTER,
            heartbeat_interval=relay_settings.HEARTBEAT_INTERVAL,
            heartbeat_timeout=relay_settings.HEARTBEAT_TIMEOUT,
            intake_channel=relay_settings.OUTBOUND_CHANNEL,
        )
