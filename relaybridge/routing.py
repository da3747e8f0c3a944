"""WebSocket URL patterns of relaybridge, included by the host's ASGI router.

``/ws/tasks/<thread>/`` streams one thread's runs; ``<thread>`` is whatever the
host's adapter resolves (:func:`relaybridge.consumers.thread_for_url`): the task's
primary key with the default adapter.
"""

from __future__ import annotations

from typing import Any

from django.urls import path

from .consumers import ThreadStreamConsumer

websocket_urlpatterns: list[Any] = [
    path("ws/tasks/<str:thread>/", ThreadStreamConsumer.as_asgi(), name="relaybridge-stream"),
]
