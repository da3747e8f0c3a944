"""The relay worker's short-lived status record, kept in Django's cache.

The worker rewrites it every few seconds with a TTL a few times that period, so a
worker that died leaves no record behind: *no record means no worker is running*,
and that is what ``relay_status`` and the admin say. Connection state never goes
to the database.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from django.core.cache import cache

from ..conf import loggable

STATUS_CACHE_KEY = "relaybridge:worker:status"
#: The worker refreshes the record at least this often.
STATUS_REFRESH_S = 5.0
#: A record older than this is gone: the worker that wrote it has stopped.
STATUS_TTL_S = 3 * STATUS_REFRESH_S

#: Connection states, in the words ``relay_status`` prints.
STATES = {
    "starting": "starting",
    "standby": "standby (another worker holds the Relay connection)",
    "connecting": "connecting to Relay",
    "connected": "connected to Relay",
    "backing_off": "disconnected; reconnecting after a pause",
    "auth_failed": "Relay rejected the app token; retrying slowly",
    "draining": "shutting down: letting in-flight runs finish",
}


@dataclass
class WorkerStatus:
    state: str
    identity: str
    pid: int
    relay_url: str
    updated_at: float = field(default_factory=time.time)
    connected_since: float | None = None
    last_frame_at: float | None = None
    in_flight: int = 0
    queued: int = 0
    agents: list[str] = field(default_factory=list)
    last_error: str | None = None
    next_attempt_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerStatus:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def auth_failed(self) -> bool:
        return self.state == "auth_failed"

    def describe(self, now: float | None = None) -> list[str]:
        """Human-readable lines for ``relay_status`` and the admin."""
        now = time.time() if now is None else now
        lines = [
            f"state:          {STATES.get(self.state, self.state)}",
            f"worker:         {self.identity} (pid {self.pid})",
            f"relay url:      {self.relay_url}",
        ]
        if self.connected_since is not None:
            lines.append(f"connected for:  {_ago(now - self.connected_since)}")
        if self.last_frame_at is not None:
            lines.append(f"last frame:     {_ago(now - self.last_frame_at)} ago")
        lines.append(f"runs in flight: {self.in_flight} (waiting to send: {self.queued})")
        # Agent ids and the last error came from Relay: one line each, redacted.
        agents = loggable(", ".join(self.agents), limit=2000) if self.agents else "(none known)"
        lines.append(f"agents:         {agents}")
        if self.last_error:
            lines.append(f"last error:     {loggable(self.last_error, limit=500)}")
        if self.next_attempt_at is not None and self.state in {"backing_off", "auth_failed"}:
            lines.append(f"next attempt:   in {_ago(max(0.0, self.next_attempt_at - now))}")
        return lines


def _ago(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def write_status(record: dict[str, Any]) -> None:
    """Store a snapshot (``WorkerStatus.as_dict()``) taken on the worker's event loop.

    A worker without the connection (starting, standby) never hides the record of
    the one that has it: it only fills an empty slot or refreshes its own record.
    """
    record = {**record, "updated_at": time.time()}
    if record.get("state") in {"starting", "standby"}:
        current = read_status()
        if current is not None and current.identity != record.get("identity"):
            return
    cache.set(STATUS_CACHE_KEY, record, timeout=STATUS_TTL_S)


def clear_status(identity: str) -> None:
    """Remove the record if this worker wrote it (a standby must not erase the leader's)."""
    current = read_status()
    if current is not None and current.identity == identity:
        cache.delete(STATUS_CACHE_KEY)


def read_status() -> WorkerStatus | None:
    data = cache.get(STATUS_CACHE_KEY)
    if not isinstance(data, dict):
        return None
    try:
        return WorkerStatus.from_dict(data)
    except TypeError:
        return None
