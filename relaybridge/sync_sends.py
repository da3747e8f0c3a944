"""Channel-layer sends from sync code, over connections kept for the process.

``async_to_sync(layer.send)`` runs each call on an event loop of its own, and
channels_redis keeps its Redis connections per event loop and closes them with it:
every ``dispatch_run`` opened a new Redis connection to hand its run to the relay
worker (4.8 of the hand-off's 6.4 ms, p50, on the benchmark stack). Here the sync
code of a process sends through one event loop of its own, on a daemon thread, and
its own copy of the layer, so the connection stays open from one send to the next.

Only channels_redis's list-based layer (``RedisChannelLayer``, the one the intake
channel needs) is sent this way. Everything else keeps ``async_to_sync``:

* an in-memory layer lives in one process's event loop (the embedded default binds
  it to Daphne's, :mod:`relaybridge.demo`), and a copy of it would be another,
  empty layer;
* another backend may not keep connections per loop at all, or close them otherwise;
* where threads are green (gevent or eventlet monkey-patched ``threading``), the
  loop's thread would be a greenlet.

A forked child (Celery's prefork pool) starts a loop of its own on first use: the
parent's thread did not come with it, and the connections it inherited are never
used. The copy is the process's layer as configured: when ``CHANNEL_LAYERS``
changes (tests), the next send makes a new copy and closes the old one's
connections on the loop they belong to.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import sys
import threading
from typing import Any, Final

from asgiref.sync import async_to_sync
from channels.layers import BaseChannelLayer, channel_layers, get_channel_layer
from redis.exceptions import ConnectionError as RedisConnectionError

logger = logging.getLogger("relaybridge")

#: The layers whose connections belong to the event loop that opened them.
KEPT_BACKENDS: Final = frozenset({"channels_redis.core.RedisChannelLayer"})
#: How long a send may take before the caller gives up on it (it is cancelled).
SEND_TIMEOUT_S: Final = 10.0


class LayerMissing(RuntimeError):
    """No channel layer is configured under that alias."""


def green_threads() -> bool:
    """Whether gevent or eventlet has replaced this process's threads with greenlets."""
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
        return True
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    return eventlet_patcher is not None and bool(eventlet_patcher.is_monkey_patched("thread"))


def keeps_connections(layer: BaseChannelLayer) -> bool:
    """Whether sends on ``layer`` from sync code go through the kept loop."""
    backend = f"{type(layer).__module__}.{type(layer).__qualname__}"
    return backend in KEPT_BACKENDS and not green_threads()


class KeptLoop:
    """One event loop per process, on a daemon thread, and the layers copied onto it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        #: alias -> (the layer the process uses, the copy this loop sends on)
        self._copies: dict[str, tuple[BaseChannelLayer, BaseChannelLayer]] = {}
        #: What a forked child inherited: never used, never closed (the parent's).
        self._inherited: list[Any] = []

    def forget_parent(self) -> None:
        """In a forked child: the loop's thread stayed in the parent."""
        self._lock = threading.Lock()
        self._inherited.append((self._loop, self._copies))
        self._loop = None
        self._copies = {}

    def send(self, alias: str, channel: str, message: dict[str, Any]) -> None:
        """``layer.send(channel, message)`` on the layer ``alias``; raises what it raised."""
        layer = get_channel_layer(alias)
        if layer is None:
            raise LayerMissing(f"no channel layer is configured as {alias!r}")
        if not keeps_connections(layer):
            async_to_sync(layer.send)(channel, message)
            return
        loop, copy = self._copy_of(alias, layer)
        try:
            _wait(asyncio.run_coroutine_threadsafe(copy.send(channel, message), loop))
        except RedisConnectionError:
            # The kept connection died with its server (a Redis restart) and is
            # dropped from the pool: the next send opens another. One attempt more
            # (a message sent twice is harmless: the relay worker's intake takes a
            # run once).
            _wait(asyncio.run_coroutine_threadsafe(copy.send(channel, message), loop))

    def _copy_of(
        self, alias: str, layer: BaseChannelLayer
    ) -> tuple[asyncio.AbstractEventLoop, BaseChannelLayer]:
        with self._lock:
            loop = self._running_loop()
            known = self._copies.get(alias)
            if known is not None and known[0] is layer:
                return loop, known[1]
            copy = channel_layers.make_backend(alias)
            self._copies[alias] = (layer, copy)
        if known is not None:
            asyncio.run_coroutine_threadsafe(_close(known[1]), loop)
        return loop, copy

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(
                target=loop.run_forever, name="relaybridge-layer-sends", daemon=True
            )
            thread.start()
            self._loop = loop
        return self._loop


def _wait(future: concurrent.futures.Future[Any]) -> None:
    try:
        future.result(SEND_TIMEOUT_S)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise


async def _close(layer: BaseChannelLayer) -> None:
    """Close a replaced copy's connections, on the loop that opened them."""
    try:
        await layer.close_pools()
    except Exception:
        logger.warning("could not close the connections of a replaced channel layer", exc_info=True)


kept_loop = KeptLoop()
os.register_at_fork(after_in_child=kept_loop.forget_parent)


def send_from_sync(alias: str, channel: str, message: dict[str, Any]) -> None:
    """Send ``message`` on ``channel`` of the layer ``alias``, from sync code only."""
    kept_loop.send(alias, channel, message)
