"""Open WebSocket connections by owner (an app id or an agent id).

An app or an agent may hold several connections at once, and may reconnect at
any moment; frames are delivered to whichever connection of the owner is open
(the preferred one first, then the newest), and dropped if none is.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from .frames import encode

log = logging.getLogger(__name__)


class Connections:
    """A registry of live connections, per owner, oldest first."""

    def __init__(self) -> None:
        self._by_owner: dict[str, list[ServerConnection]] = {}
        self._waiters: set[asyncio.Event] = set()

    def add(self, owner: str, conn: ServerConnection) -> None:
        self._by_owner.setdefault(owner, []).append(conn)
        self._changed()

    def remove(self, owner: str, conn: ServerConnection) -> None:
        conns = self._by_owner.get(owner, [])
        if conn in conns:
            conns.remove(conn)
        if not conns:
            self._by_owner.pop(owner, None)
        self._changed()

    def _changed(self) -> None:
        for waiter in self._waiters:
            waiter.set()

    async def wait_until(self, condition: Callable[[], bool]) -> None:
        """Wait until ``condition()`` holds, re-checking whenever a connection comes or goes."""
        while not condition():
            waiter = asyncio.Event()
            self._waiters.add(waiter)
            try:
                await waiter.wait()
            finally:
                self._waiters.discard(waiter)

    def of(self, owner: str) -> list[ServerConnection]:
        """The owner's connections that are still open, oldest first."""
        return [c for c in self._by_owner.get(owner, []) if c.state is State.OPEN]

    def owners(self) -> list[str]:
        return list(self._by_owner)

    def connected(self, owner: str) -> bool:
        return bool(self.of(owner))

    async def send(
        self, owner: str, frame: Mapping[str, Any], prefer: ServerConnection | None = None
    ) -> bool:
        """Send ``frame`` to one open connection of ``owner``; ``False`` if none took it."""
        candidates = list(reversed(self.of(owner)))
        if prefer is not None and prefer in candidates:
            candidates.remove(prefer)
            candidates.insert(0, prefer)
        message = encode(frame)
        for conn in candidates:
            try:
                await conn.send(message)
            except ConnectionClosed:
                continue
            return True
        return False

    def abort(self, owner: str | None = None) -> int:
        """Close connections abruptly (no close frame), like a network failure."""
        owners = [owner] if owner is not None else self.owners()
        count = 0
        for name in owners:
            for conn in self._by_owner.get(name, []):
                conn.transport.abort()
                count += 1
        return count
