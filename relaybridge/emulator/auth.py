"""Endpoint routing and token lookup for the WebSocket handshake (protocol §1).

A token may come from ``Authorization: Bearer <token>`` or from ``?token=``; the
header wins when both are present. The token is looked up in the table of the
endpoint it was presented to, so an app token on the agent endpoint (or the
reverse) is simply a bad token there.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from .config import EmulatorConfig

APP_PATH = "/v1/ws/app"
AGENT_PATH = "/v1/ws/agent"


def base_url_for(host: str, port: int, *, tls: bool = False) -> str:
    """``ws://host:port`` (``wss://`` over TLS) for an emulator, an IPv6 host in brackets."""
    scheme = "wss" if tls else "ws"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


class Endpoint(enum.StrEnum):
    APP = "app"
    AGENT = "agent"


ENDPOINTS = {APP_PATH: Endpoint.APP, AGENT_PATH: Endpoint.AGENT}


@dataclass(frozen=True)
class Route:
    endpoint: Endpoint
    #: The app id or agent id the token belongs to; ``None`` for a bad token.
    identity: str | None


def presented_token(target: str, authorization: str | None) -> str | None:
    """The token a client presented: the Bearer header first, then ``?token=``."""
    if authorization:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    values = parse_qs(urlsplit(target).query).get("token")
    return values[0] if values else None


def resolve(target: str, authorization: str | None, config: EmulatorConfig) -> Route | None:
    """Route a handshake; ``None`` means the path is not a Relay endpoint (HTTP 404)."""
    endpoint = ENDPOINTS.get(urlsplit(target).path.rstrip("/") or "/")
    if endpoint is None:
        return None
    token = presented_token(target, authorization)
    table = config.app_tokens if endpoint is Endpoint.APP else config.agent_tokens
    return Route(endpoint, table.get(token) if token is not None else None)
