"""The embedded default in one process: Daphne and the relay worker on one event loop.

The in-memory channel layer only connects code that runs in one process, on one
event loop. So ``manage.py relay_devserver`` (and ``run_demo``, built on it) runs
Daphne on Twisted's asyncio reactor and schedules the relay worker (and, without
``RELAY_APP_TOKEN``, the Relay emulator) on that reactor's asyncio loop. Celery is
eager there, so tasks run in the thread
that queues them: a view's thread (``async_to_sync`` hops back onto the loop) or a
retry's timer thread (which :func:`bind_layer_to_loop` sends back onto the loop).

The first SIGINT/SIGTERM drains the worker, then stops the web server; a second
one stops everything at once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer, InMemoryChannelLayer
from django.utils.translation import gettext as _

from .worker.launch import WorkerRun

logger = logging.getLogger("relaybridge.demo")

#: How long a foreign thread waits for the loop to take its channel-layer call.
LAYER_HOP_TIMEOUT_S = 10.0
#: Extra time, past the worker's drain, before a stop becomes forced.
FORCED_STOP_GRACE_S = 10.0

_LAYER_METHODS = ("send", "group_send", "group_add", "group_discard", "flush")


class DaphneMissing(ImportError):
    """Daphne, which the one-process server runs on, is not installed."""


def require_daphne() -> None:
    """Raise :class:`DaphneMissing`, naming the extra to install, when Daphne is absent.

    Daphne is an extra (``relaybridge[daphne]``): a host may serve its project with
    another ASGI server, and only the one-process server needs Daphne itself.
    """
    try:
        import daphne.server  # noqa: F401
    except ImportError as exc:
        raise DaphneMissing(
            _(
                "The one-process server runs on Daphne, which is not installed. Install "
                'relaybridge with its daphne extra: pip install "relaybridge[daphne]"'
            )
        ) from exc


def bind_layer_to_loop(layer: BaseChannelLayer | None, loop: asyncio.AbstractEventLoop) -> bool:
    """Make an in-memory layer safe to call from threads that run their own loop.

    ``asyncio.Queue`` is not thread-safe: a message put from another loop (a timer
    thread's ``async_to_sync``) would not wake the receiver waiting on ``loop``.
    Calls made on ``loop`` are unchanged; calls from elsewhere are run on ``loop``.
    Returns whether the layer was bound (only in-memory layers need it).
    """
    if not isinstance(layer, InMemoryChannelLayer) or getattr(layer, "_relaybridge_loop", None):
        return False
    for name in _LAYER_METHODS:
        setattr(layer, name, _on_loop(getattr(layer, name), loop))
    layer._relaybridge_loop = loop
    return True


def _on_loop(
    func: Callable[..., Awaitable[Any]], home: asyncio.AbstractEventLoop
) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(func)
    async def call(*args: Any, **kwargs: Any) -> Any:
        if asyncio.get_running_loop() is home:
            return await func(*args, **kwargs)

        async def run() -> Any:
            return await func(*args, **kwargs)

        future = asyncio.run_coroutine_threadsafe(run(), home)
        async with asyncio.timeout(LAYER_HOP_TIMEOUT_S):
            return await asyncio.wrap_future(future)

    return call


class EmbeddedServer:
    """Daphne serving ``application`` plus a relay worker, on the reactor's loop."""

    def __init__(
        self,
        application: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        on_ready: Callable[[str, WorkerRun], None] | None = None,
        on_stopping: Callable[[], None] | None = None,
        shutdown_timeout: float = 5.0,
    ) -> None:
        require_daphne()
        # Importing daphne.server installs Twisted's asyncio reactor (if nothing has).
        from daphne.server import Server

        self.server = Server(
            application=application,
            endpoints=[f"tcp:port={port}:interface={host}"],
            signal_handlers=False,
            verbosity=0,
        )
        self.worker = WorkerRun(shutdown_timeout=shutdown_timeout)
        self.shutdown_timeout = shutdown_timeout
        self.on_ready = on_ready
        self.on_stopping = on_stopping
        self.url: str | None = None
        self.failed = False
        self._signals = 0
        self._task: asyncio.Task[None] | None = None

    def run(self) -> bool:
        """Serve until stopped; True on a clean stop, False if anything failed."""
        _reactor().callWhenRunning(self._started)
        self.server.run()
        if not self.server.listening_addresses:
            self.failed = True
        return not self.failed

    # --- inside the reactor -----------------------------------------------------------

    def _started(self) -> None:
        from channels.layers import get_channel_layer

        from .streams import stream_layer

        if not self.server.listening_addresses:
            self.failed = True
            self._stop_reactor()
            return
        loop = asyncio.get_event_loop()  # Daphne made the reactor's loop the current one
        bind_layer_to_loop(get_channel_layer(), loop)
        bind_layer_to_loop(stream_layer(), loop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        self._task = loop.create_task(self.worker.run(), name="relay-worker")
        self._task.add_done_callback(self._worker_done)
        host, port = self.server.listening_addresses[0]
        self.url = f"http://{host}:{port}/"
        if self.on_ready is not None:
            self.on_ready(self.url, self.worker)

    def _on_signal(self) -> None:
        self._signals += 1
        if self._signals == 1:
            if self.on_stopping is not None:
                self.on_stopping()
            self.worker.request_stop()
            loop = asyncio.get_event_loop()
            loop.call_later(self.shutdown_timeout + FORCED_STOP_GRACE_S, self._force_stop)
        else:
            logger.warning("second signal: stopping now")
            self._force_stop()

    def _force_stop(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
        self._stop_reactor()

    def _worker_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.failed = True
            logger.error("the relay worker failed", exc_info=task.exception())
        elif self._signals == 0:
            self.failed = True
            logger.error("the relay worker stopped on its own")
        self._stop_reactor()

    def _stop_reactor(self) -> None:
        reactor = _reactor()
        if reactor.running:
            reactor.stop()


def _reactor() -> Any:
    """Twisted's global reactor (Daphne installed the asyncio one)."""
    from twisted.internet import reactor

    return reactor
