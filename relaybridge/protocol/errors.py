"""The one exception type the protocol core raises."""

from __future__ import annotations


class ProtocolError(ValueError):
    """A frame or value that does not follow Relay's wire protocol.

    ``reason`` is a short, human-readable explanation that never contains a token
    and never quotes the offending input (frames carry user text and we log
    reasons freely).

    When a malformed frame still names the event it belongs to, ``event_id`` and
    ``frame_type`` say so: the caller can then fail that one run at once instead
    of leaving it to the stall watchdog.
    """

    def __init__(
        self,
        reason: str,
        *,
        event_id: str | None = None,
        frame_type: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id
        self.frame_type = frame_type
