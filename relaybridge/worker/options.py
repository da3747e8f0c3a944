"""The relay worker's tunables, read from ``RELAYBRIDGE_*`` settings by default."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..conf import relay_settings
from ..protocol import PlanLimits
from .connection import AuthStyle


@dataclass
class WorkerOptions:
    url: str
    token: str = field(repr=False)
    auth_style: AuthStyle = "header"
    limits: PlanLimits | None = None
    flush_ms: int = 50
    stall_timeout: float = 120.0
    shutdown_timeout: float = 30.0
    sweep_interval: float = 30.0
    heartbeat_interval: float = 30.0
    heartbeat_timeout: float = 5.0

    @classmethod
    def from_settings(cls, url: str, token: str) -> WorkerOptions:
        style = relay_settings.AUTH_STYLE
        return cls(
            url=url,
            token=token,
            auth_style="query" if style == "query" else "header",
            limits=relay_settings.plan_limits(),
            flush_ms=relay_settings.STREAM_FLUSH_MS,
            stall_timeout=relay_settings.STALL_TIMEOUT,
            shutdown_timeout=relay_settings.SHUTDOWN_TIMEOUT,
            sweep_interval=relay_settings.SWEEP_INTERVAL,
            heartbeat_interval=relay_settings.HEARTBEAT_INTERVAL,
            heartbeat_timeout=relay_settings.HEARTBEAT_TIMEOUT,
        )
