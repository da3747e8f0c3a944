"""WebSocket URL patterns of relaybridge, included by the host's ASGI router.

``/<RELAYBRIDGE_STREAM_PATH><thread>/`` (``/ws/tasks/<thread>/`` by default) streams
one thread's runs; ``<thread>`` is the value :mod:`relaybridge.stream_urls` gives
and reads back: the task's primary key with the default adapter. Any other path
under the prefix (``/ws/tasks/1``, ``/ws/tasks//``, a value with a line break) is
closed with 4400 instead of failing the handshake with a server error. The setting
is read when this module is imported, at the ASGI application's start.

:data:`unknown_path_urlpatterns`, put last in the host's router, does the same for
every other path the router does not know (its own routes go before it).
"""

from __future__ import annotations

from typing import Any

from django.urls import path, re_path

from .consumers import RefusedPathConsumer, ThreadStreamConsumer
from .stream_urls import stream_prefix_pattern, stream_route

websocket_urlpatterns: list[Any] = [
    path(stream_route(), ThreadStreamConsumer.as_asgi(), name="relaybridge-stream"),
]
if prefix := stream_prefix_pattern():
    websocket_urlpatterns.append(re_path(prefix, RefusedPathConsumer.as_asgi()))

#: A catch-all the host may put after all of its routes: sockets on unknown paths are
#: closed with 4400 rather than failing the handshake with a server error.
unknown_path_urlpatterns: list[Any] = [re_path(r"", RefusedPathConsumer.as_asgi())]
