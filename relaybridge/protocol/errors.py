"""The one exception type the protocol core raises."""


class ProtocolError(ValueError):
    """A frame or value that does not follow Relay's wire protocol.

    ``reason`` is a short, human-readable explanation that never contains a token.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
