"""Opening the Relay connection, and telling auth failures from network trouble.

Relay signals a bad or revoked app token in three ways (relay-protocol.md §1):
HTTP 401/403 on the handshake, close code 4001, or a null-event ``error`` frame
right after connecting. All three become :class:`AuthenticationFailed`, which the
connection loop answers by backing off to the cap instead of reconnecting hot.
Nothing here ever puts the token, or a URL carrying it, into a message.
"""

from __future__ import annotations

import ssl
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, InvalidURI

AuthStyle = Literal["header", "query"]

#: Relay closes with this code when it rejects the token after the upgrade.
AUTH_CLOSE_CODE = 4001
AUTH_HTTP_STATUSES = frozenset({401, 403})
#: The largest frame read from Relay. A frame above it makes the websockets library
#: close the connection (1009), which drops every answer on it; so it is generous:
#: a reply carries the answer (``RELAYBRIDGE_MAX_ANSWER_CHARS``, 200,000 characters by
#: default, up to 12 bytes each once JSON-escaped) plus the payload echo (at most
#: 65,536 bytes, relay-protocol.md §2, escaped again). Anything longer than the cap
#: that fits in a frame is cut at the cap and fails only its own run.
MAX_FRAME_BYTES = 16 * 1024 * 1024


class RelayConnectError(Exception):
    """The connection could not be opened; the message is safe to log."""


class AuthenticationFailed(RelayConnectError):
    """Relay rejected the app token."""


def redacted(url: str) -> str:
    """``url`` without its query string, which may carry a token."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def with_token_query(url: str, token: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "token"]
    query.append(("token", token))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


async def open_relay_connection(
    url: str,
    token: str,
    *,
    auth_style: AuthStyle = "header",
    open_timeout: float = 10.0,
    ca_file: str | None = None,
) -> ClientConnection:
    """Connect to Relay's app endpoint with the app token.

    WebSocket-level keepalive pings are off: the worker runs Relay's own JSON
    ``ping``/``pong`` heartbeat, which is what Relay documents and answers.
    A ``wss://`` URL is verified against the system's certificate authorities, or
    only those in ``ca_file`` (``RELAYBRIDGE_RELAY_CA_FILE``); never not at all.
    """
    if auth_style == "query":
        target, headers = with_token_query(url, token), None
    else:
        target, headers = url, {"Authorization": f"Bearer {token}"}
    # The library picks the system's store for wss:// unless given a context.
    tls: dict[str, Any] = {}
    if ca_file is not None and urlsplit(url).scheme.lower() == "wss":
        try:
            tls["ssl"] = ssl.create_default_context(cafile=ca_file)
        except (OSError, ValueError):
            raise RelayConnectError(
                "RELAYBRIDGE_RELAY_CA_FILE holds no usable certificate"
            ) from None
    try:
        return await connect(
            target,
            additional_headers=headers,
            open_timeout=open_timeout,
            ping_interval=None,
            max_size=MAX_FRAME_BYTES,
            proxy=None,
            **tls,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status in AUTH_HTTP_STATUSES:
            raise AuthenticationFailed(f"Relay refused the app token (HTTP {status})") from None
        raise RelayConnectError(f"Relay refused the connection (HTTP {status})") from None
    except InvalidURI:
        raise RelayConnectError(f"RELAY_URL is not a WebSocket URL: {redacted(url)}") from None
    except (OSError, TimeoutError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise RelayConnectError(f"cannot reach {redacted(url)}: {reason}") from None
    except Exception as exc:  # handshake errors from the library; never echo the URL
        failure = type(exc).__name__
        raise RelayConnectError(f"handshake with {redacted(url)} failed: {failure}") from None
