"""WebSocket URL patterns of relaybridge, included by the host's ASGI router.

``/<RELAYBRIDGE_STREAM_PATH><thread>/`` (``/ws/tasks/<thread>/`` by default) streams
one thread's runs; ``<thread>`` is the value :mod:`relaybridge.stream_urls` gives
and reads back: the task's primary key with the default adapter. The setting is
read when this module is imported, at the ASGI application's start.
"""

from __future__ import annotations

from typing import Any

from django.urls import path

from .consumers import ThreadStreamConsumer
from .stream_urls import stream_route

websocket_urlpatterns: list[Any] = [
    path(stream_route(), ThreadStreamConsumer.as_asgi(), name="relaybridge-stream"),
]
