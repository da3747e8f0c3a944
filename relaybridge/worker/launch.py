"""Starting a relay worker: the Relay endpoint, the lock, and a stoppable run.

Shared by ``manage.py relay_worker`` (the worker as its own process) and
``manage.py run_demo`` (the worker on the web server's event loop).

With ``RELAY_APP_TOKEN`` set the worker connects to ``RELAY_URL`` (Relay itself
by default). Without a token it starts the local Relay emulator, with its scripted
agents, inside the same process on a loopback port: the embedded default.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from dataclasses import replace

from ..conf import app_token, relay_settings, relay_url
from .bridge import BridgeWorker, WorkerOptions
from .leader import Leadership, LocalLeaderLock, RedisLeaderLock

logger = logging.getLogger("relaybridge.worker")


def make_lock(ttl: float) -> Leadership:
    """The leadership lock: Redis when ``RELAYBRIDGE_REDIS_URL`` is set, else local."""
    url = relay_settings.REDIS_URL
    if not url:
        return LocalLeaderLock(ttl)
    import redis.asyncio as aioredis

    return RedisLeaderLock(aioredis.Redis.from_url(url), ttl=ttl)


@contextlib.asynccontextmanager
async def relay_endpoint(force_emulator: bool = False) -> AsyncIterator[tuple[str, str]]:
    """Yield ``(url, token)``: the real Relay, or an in-process emulator without a token."""
    token = app_token()
    if token and not force_emulator:
        yield relay_url(), token
        return
    from ..emulator.config import EmulatorConfig
    from ..emulator.server import RelayEmulator

    # A fresh token per run: it never leaves this process.
    local_token = f"rlk_local_{secrets.token_hex(12)}"
    config = EmulatorConfig(host="127.0.0.1", port=0, app_tokens={local_token: "local"})
    async with RelayEmulator(config) as emulator:
        logger.info("RELAY_APP_TOKEN is not set: using the local Relay emulator %s", emulator.url)
        yield emulator.url, local_token


class WorkerRun:
    """One relay worker from start to stop, with its endpoint and lock.

    :meth:`request_stop` may be called at any time, even before the worker exists
    (while the emulator starts): the worker then drains at once.
    """

    def __init__(
        self,
        *,
        lock_ttl: float = 10.0,
        force_emulator: bool = False,
        shutdown_timeout: float | None = None,
    ) -> None:
        self.lock_ttl = lock_ttl
        self.force_emulator = force_emulator
        self.shutdown_timeout = shutdown_timeout
        self.worker: BridgeWorker | None = None
        self.relay_url: str | None = None
        self._stop_requested = False

    def request_stop(self) -> None:
        self._stop_requested = True
        if self.worker is not None:
            self.worker.request_stop()

    async def run(self) -> None:
        async with relay_endpoint(self.force_emulator) as (url, token):
            options = WorkerOptions.from_settings(url, token)
            if self.shutdown_timeout is not None:
                options = replace(
                    options, shutdown_timeout=min(options.shutdown_timeout, self.shutdown_timeout)
                )
            self.relay_url = url
            self.worker = BridgeWorker(options, lock=make_lock(self.lock_ttl))
            if self._stop_requested:
                self.worker.request_stop()
            await self.worker.run()
