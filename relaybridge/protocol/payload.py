"""The event payload size limit (relay-protocol.md §2)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import ProtocolError
from .jsonvalue import dumps_like_relay

#: Relay measures ``json.dumps(payload)`` encoded as UTF-8.
MAX_PAYLOAD_BYTES = 65_536


def payload_size(payload: Mapping[str, Any]) -> int:
    """Size of ``payload`` in bytes, measured the way Relay measures it.

    Accepts plain dicts and the frozen payloads that frames carry.
    """
    return len(dumps_like_relay(payload).encode("utf-8"))


class PayloadTooLarge(ProtocolError):
    """A payload over Relay's limit; ``size`` is its measured size in bytes."""

    def __init__(self, size: int) -> None:
        super().__init__(f"payload is {size} bytes; Relay accepts at most {MAX_PAYLOAD_BYTES}")
        self.size = size


def check_payload_size(payload: Mapping[str, Any]) -> int:
    """Return the payload's size, or raise :class:`PayloadTooLarge`."""
    size = payload_size(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadTooLarge(size)
    return size
