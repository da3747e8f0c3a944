"""WebSocket URL patterns of relaybridge, included by the host's ASGI router."""

from __future__ import annotations

from typing import Any

websocket_urlpatterns: list[Any] = []
