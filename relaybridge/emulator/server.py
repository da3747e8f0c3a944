"""The local Relay: a real WebSocket server with Relay's two endpoints.

:class:`RelayEmulator` is both the server and the in-process control surface
tests use to inject faults (see :class:`~relaybridge.emulator.control.EmulatorControl`).
"""

from __future__ import annotations

import logging
import ssl
from types import TracebackType

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from . import frames
from .agent_side import serve_agent
from .agents import ScriptedAgent, builtin_agents
from .app_side import serve_app
from .auth import AGENT_PATH, APP_PATH, Endpoint, base_url_for, resolve
from .config import BadTokenMode, EmulatorConfig
from .control import EmulatorControl
from .faults import Faults
from .load import LoadAgent
from .router import Router

log = logging.getLogger(__name__)

# The websockets library logs handshake headers (Authorization included) at
# DEBUG. It gets its own logger that never goes below INFO, so no log level
# chosen for the emulator can ever write a token out.
_wire_log = logging.getLogger("relaybridge.emulator.wire")
_wire_log.setLevel(logging.INFO)

#: Frames above this size close the connection (1009) before validation; it is
#: well above the 64 KiB payload limit so that PAYLOAD_TOO_LARGE is answered.
MAX_FRAME_BYTES = 4 * 1024 * 1024


class RelayEmulator(EmulatorControl):
    """A Relay deployment on a local port: ``async with RelayEmulator(config) as relay``."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        *,
        agents: dict[str, ScriptedAgent] | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        if agents is None:
            agents = builtin_agents(self.config.builtin_agents)
            if self.config.load_agent is not None:
                agents[LoadAgent.agent_id] = LoadAgent(self.config.load_agent)
        router = Router(self.config, agents, Faults())
        super().__init__(router)
        self._server: Server | None = None
        self._port: int | None = None

    # -- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        tls: ssl.SSLContext | None = None
        if self.config.tls_cert is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        self._server = await serve(
            self._handle,
            self.config.host,
            self._port if self._port is not None else self.config.port,
            process_request=self._process_request,
            max_size=MAX_FRAME_BYTES,
            logger=_wire_log,
            ssl=tls,
        )
        self._port = self._server.sockets[0].getsockname()[1]
        log.info(
            "Relay emulator on %s (apps: %s; plan %s)",
            self.url,
            ", ".join(sorted(set(self.config.app_tokens.values()))),
            self.config.plan.name,
        )

    async def stop(self) -> None:
        """Close every connection (1001), cancel the built-in agents and forget open events."""
        # Scripts first, so nothing streams into connections that are closing;
        # then a second sweep for tasks started while the connections wound down.
        await self.router.shutdown()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        await self.router.shutdown()
        # Started again, it must be the Relay a restarted process would be.
        self.router.forget_open_events()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    async def __aenter__(self) -> RelayEmulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- addresses ----------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.config.host

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the emulator is not started")
        return self._port

    @property
    def base_url(self) -> str:
        return base_url_for(self.host, self.port, tls=self.config.tls)

    @property
    def url(self) -> str:
        """The app endpoint (what a host project uses as ``RELAY_URL``)."""
        return self.base_url + APP_PATH

    @property
    def agent_url(self) -> str:
        return self.base_url + AGENT_PATH

    @property
    def app_token(self) -> str:
        """The first configured app token."""
        return self.config.first_app_token

    # -- handshake and connections ----------------------------------------------

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        route = resolve(request.path, request.headers.get("Authorization"), self.config)
        if route is None:
            return conn.respond(404, "Not Found\n")
        if route.identity is None and self.config.bad_token is BadTokenMode.HTTP_401:
            log.info("refused %s handshake: invalid or revoked token (HTTP 401)", route.endpoint)
            return conn.respond(401, frames.UNAUTHORIZED_MESSAGE + "\n")
        return None

    async def _handle(self, conn: ServerConnection) -> None:
        request = conn.request
        if request is None:  # the handshake always sets it; keeps the type checker honest
            return
        route = resolve(request.path, request.headers.get("Authorization"), self.config)
        if route is None:
            return
        if route.identity is None:
            log.info("refused %s connection: invalid or revoked token (close 4001)", route.endpoint)
            await conn.send(frames.encode(frames.unauthorized_frame()))
            await conn.close(4001, frames.UNAUTHORIZED_MESSAGE)
            return
        if route.endpoint is Endpoint.APP:
            await serve_app(conn, route.identity, self.router)
        else:
            await serve_agent(conn, route.identity, self.router)
