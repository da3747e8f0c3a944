"""Raw mode: put arbitrary bytes on an app's connection, as a broken Relay would.

Everything else in the emulator speaks well-formed JSON frames. A client must
also survive what a buggy or hostile Relay might send: text that is not JSON,
JSON that is not an object, frames with fields of the wrong type, frames cut
short, binary frames, text frames that are not UTF-8, frames far larger than
any real one, and a WebSocket frame whose header promises more bytes than ever
arrive. :class:`RawFrames` delivers each of those on the app's open connections
and nothing more: it keeps no state and does not touch the routing of events,
so the scripted agents go on answering real events around the injected frames.
"""

from __future__ import annotations

import logging
import struct

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from .router import Router

log = logging.getLogger(__name__)

#: The first byte of a final text frame (FIN bit and opcode 1, RFC 6455 §5.2).
_FIN_TEXT = 0x81


class RawFrames:
    """Send raw WebSocket messages to the app connections of one emulator."""

    def __init__(self, router: Router) -> None:
        self.router = router
        #: Raw messages delivered so far, counted per connection.
        self.messages_sent = 0

    def _connections(self, app_id: str | None) -> list[ServerConnection]:
        owners = [app_id] if app_id is not None else self.router.apps.owners()
        return [conn for owner in owners for conn in self.router.apps.of(owner)]

    async def send(
        self, message: str | bytes, *, app_id: str | None = None, text: bool | None = None
    ) -> int:
        """Send ``message`` unchanged to every open connection of ``app_id`` (all apps).

        A ``str`` goes as a text frame and ``bytes`` as a binary frame, unless
        ``text`` says otherwise: ``text=True`` with bytes that are not UTF-8 makes
        a text frame the client must reject (close code 1007). Returns how many
        connections took the message.
        """
        sent = 0
        for conn in self._connections(app_id):
            try:
                await conn.send(message, text=text)
            except ConnectionClosed:
                continue
            sent += 1
        self.messages_sent += sent
        log.debug("raw frame of %d characters to %d connection(s)", len(message), sent)
        return sent

    def send_truncated(self, message: bytes, *, app_id: str | None = None) -> int:
        """Start a text frame for ``message``, write only its first half, then drop the TCP
        connection without a close frame: the client reads a frame that never ends.

        Returns how many connections were cut this way.
        """
        header = _frame_header(_FIN_TEXT, len(message))
        cut = 0
        for conn in self._connections(app_id):
            transport = conn.transport
            if transport.is_closing():
                continue
            transport.write(header + message[: len(message) // 2])
            transport.abort()
            cut += 1
        return cut


def _frame_header(first_byte: int, length: int) -> bytes:
    """An unmasked (server-to-client) WebSocket frame header for ``length`` bytes."""
    if length < 126:
        return bytes([first_byte, length])
    if length < 1 << 16:
        return bytes([first_byte, 126]) + struct.pack("!H", length)
    return bytes([first_byte, 127]) + struct.pack("!Q", length)


__all__ = ["RawFrames"]
