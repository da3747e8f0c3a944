"""The connection loop: the deployment's one Relay connection, kept open forever.

:class:`RelayConnection` connects (:mod:`.handshake`), reconnects with the protocol
core's backoff (auth failures back off to the cap instead of reconnecting hot),
runs Relay's JSON heartbeat (a ``ping`` every interval; no frame at all within the
timeout means the connection is dead), feeds every frame to the session state
machine, sends what the session says to send, and queues each outcome on its
run's stream (:class:`~.run_streams.RunStreams`). It alone drives the session;
the worker uses the small interface below (submit, abandon, pause, counts).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..batching import wait_event
from ..conf import loggable
from ..protocol import (
    AgentInfo,
    AgentsDiscovered,
    Backoff,
    ConnectionFailed,
    ErrorCode,
    Ping,
    ProtocolError,
    RelaySession,
    Reply,
    SessionCounts,
    Submission,
    Token,
    TokenReceived,
    parse,
    serialize,
)
from .database import in_thread, mark_sent, run_for_event
from .handshake import (
    AUTH_CLOSE_CODE,
    AuthenticationFailed,
    AuthStyle,
    RelayConnectError,
    open_relay_connection,
    redacted,
)
from .run_streams import RunStreams
from .status import WorkerStatus

logger = logging.getLogger("relaybridge.worker")

#: How long a closed connection's loops get to finish before they are left behind.
TEARDOWN_TIMEOUT_S = 5.0


class DeadConnection(Exception):
    """No frame arrived within the heartbeat timeout."""


class RelayConnection:
    def __init__(
        self,
        *,
        url: str,
        token: str,
        auth_style: AuthStyle,
        session: RelaySession,
        streams: RunStreams,
        status: WorkerStatus,
        on_agents: Callable[[tuple[AgentInfo, ...]], Awaitable[None]],
        heartbeat_interval: float,
        heartbeat_timeout: float,
        backoff: Backoff | None = None,
        status_changed: asyncio.Event | None = None,
        ca_file: str | None = None,
    ) -> None:
        self.url = url
        self._ca_file = ca_file
        self._token = token
        self._auth_style = auth_style
        self._session = session
        self._streams = streams
        self._status = status
        self._on_agents = on_agents
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._backoff = backoff or Backoff()
        #: Set on every connection state change, so the status record is rewritten now.
        self._status_changed = status_changed or asyncio.Event()
        #: Set whenever there may be something to send (a submission, a released gate).
        self._wake = asyncio.Event()
        #: While paused (draining), nothing new is sent; answers are still read.
        self._paused = False
        self._connections = 0
        self._last_frame = 0.0
        #: Whether an agent's answer came on the current connection (a healthy one).
        self._answered = False

    def __repr__(self) -> str:  # the token never appears in a repr
        return f"<RelayConnection {redacted(self.url)}>"

    # --- what the worker asks of the connection ----------------------------------------

    def submit(self, submission: Submission) -> bool:
        """Queue an event for Relay; False if its run is queued or in flight already.

        Raises :class:`~relaybridge.protocol.PayloadTooLarge` rather than send it.
        """
        accepted = self._session.submit(submission)
        self._wake.set()
        return accepted

    def carries(self, run_id: str) -> bool:
        """Whether the run is queued or in flight on this connection."""
        return self._session.state_of(run_id) is not None

    def abandon(self, run_id: str) -> None:
        """Stop tracking the run (it ended here); its thread and in-flight place are free."""
        if self._session.abandon(run_id):
            self._wake.set()

    def in_flight(self) -> list[str]:
        """Runs sent and not yet ended, oldest first."""
        return self._session.in_flight_refs()

    def counts(self) -> SessionCounts:
        return self._session.counts()

    @property
    def connected(self) -> bool:
        return self._session.connected

    def lost_answers(self) -> list[str]:
        """Runs whose answer was lost with a connection (no frame within the grace)."""
        return self._session.lost_answers()

    def unheard_refs(self) -> list[str]:
        """Runs whose connection closed, not heard from since (their grace may be running)."""
        return self._session.unheard_refs()

    def watch_unheard(self, run_id: str, event_id: str) -> bool:
        """Watch a run an earlier worker left accepted, as one of a closed connection."""
        return self._session.watch_unheard(run_id, event_id)

    def pause(self) -> None:
        """Send nothing new (draining); answers are still read."""
        self._paused = True

    @property
    def connections(self) -> int:
        """How many times a connection was opened."""
        return self._connections

    # --- the reconnect loop ---------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the connection until ``stop`` is set; then let the run streams finish."""
        try:
            await self._connect_until(stop)
        finally:
            if not await self._streams.wait_idle(seconds=TEARDOWN_TIMEOUT_S):
                logger.warning("some runs still had frames to handle at shutdown")

    async def _connect_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._status.state = "connecting"
            logger.info("connecting to %s", redacted(self.url))
            started = time.monotonic()
            try:
                ws = await open_relay_connection(
                    self.url, self._token, auth_style=self._auth_style, ca_file=self._ca_file
                )
                try:
                    await self._serve(ws, stop)
                finally:
                    # However it ended -- closed, torn down without a close frame (a
                    # killed Relay), dead after a ping -- what it proved counts.
                    lasted = time.monotonic() - started
                    self._backoff.connection_closed(lasted, answered=self._answered)
                if stop.is_set():
                    return
                delay = self._backoff.next_delay()
                self._lost("the connection to Relay closed", "backing_off", delay)
            except AuthenticationFailed as exc:
                delay = self._backoff.next_auth_failure_delay()
                logger.error("%s; check RELAY_APP_TOKEN (retrying in %.0f s)", loggable(exc), delay)
                self._lost(str(exc), "auth_failed", delay)
            except (RelayConnectError, DeadConnection, ConnectionClosed, OSError) as exc:
                delay = self._backoff.next_delay()
                self._lost(str(exc) or type(exc).__name__, "backing_off", delay)
            await wait_event(stop, delay)

    def _lost(self, reason: str, state: str, delay: float) -> None:
        # A close reason or a handshake answer is Relay's text: logged and reported
        # (``relay_status``) redacted, on one line.
        reason = loggable(reason, limit=500)
        if state != "auth_failed":
            logger.warning("%s; reconnecting in %.1f s", reason, delay)
        self._status.state = state
        self._status.last_error = reason
        self._status.connected_since = None
        self._status.next_attempt_at = time.time() + delay
        self._status_changed.set()

    async def _serve(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        self._connections += 1
        self._answered = False
        self._last_frame = time.monotonic()
        self._status.state = "connected"
        self._status.connected_since = time.time()
        self._status.last_error = None
        self._status_changed.set()
        logger.info("connected to %s", redacted(self.url))
        # Loops check ``closing`` as well as being cancelled: some libraries awaited
        # inside them can swallow a cancellation (see database.py).
        closing = asyncio.Event()
        tasks = [
            asyncio.create_task(self._read(ws), name="relay-read"),
            asyncio.create_task(self._send_loop(ws, closing), name="relay-send"),
            asyncio.create_task(self._heartbeat(ws, closing), name="relay-heartbeat"),
            asyncio.create_task(stop.wait(), name="relay-stop"),
        ]
        try:
            self._session.on_connect()
            await self._send_answers(ws)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            closing.set()
            self._wake.set()
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=TEARDOWN_TIMEOUT_S)
            if stop.is_set():
                await ws.close(1000, "relay worker shutting down")
            else:
                ws.transport.abort()
            requeued = self._session.on_disconnect()
            if requeued:
                logger.info("%d sent but unaccepted run(s) will be sent again", len(requeued))
            unheard = self._session.unheard_refs()
            if unheard:
                logger.info(
                    "%d accepted run(s) were carried by the closed connection: asked again "
                    "unless they are heard from soon after the next one",
                    len(unheard),
                )
            if ws.close_code == AUTH_CLOSE_CODE:
                raise AuthenticationFailed("Relay rejected the app token (close code 4001)")

    # --- the three loops of one connection -----------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            self._last_frame = time.monotonic()
            self._status.last_frame_at = time.time()
            try:
                frame = parse(message)
            except ProtocolError as exc:
                logger.warning("ignoring a malformed frame from Relay: %s", loggable(exc.reason))
                if exc.event_id is not None:
                    fail = functools.partial(self._fail_unreadable, exc.event_id, exc.reason)
                    self._streams.for_event(exc.event_id, fail)
                continue
            if isinstance(frame, Token | Reply):
                self._answered = True
            gate_moved = False
            for outcome in self._session.on_frame(frame):
                if not self._streams.on_outcome(outcome):
                    await self._on_connection_outcome(outcome)
                # Only a frame that settles or refuses an event can free a send slot;
                # tokens (nearly every frame) need not wake the send loop.
                gate_moved = gate_moved or not isinstance(outcome, TokenReceived)
            await self._send_answers(ws)
            if gate_moved:
                self._wake.set()

    async def _send_answers(self, ws: ClientConnection) -> None:
        """Send what the session decided to answer (a pong, a discover)."""
        for frame in self._session.data_to_send():
            await ws.send(serialize(frame))

    async def _send_loop(self, ws: ClientConnection, closing: asyncio.Event) -> None:
        while not closing.is_set():
            self._wake.clear()
            wake_at = None
            if not self._paused:
                batch = self._session.next_sends()
                if batch.send:
                    for submission in batch.send:
                        # The thread's previous run records its end before the next
                        # event of that thread goes out.
                        await self._streams.settled(submission.pair)
                    refs = [submission.ref for submission in batch.send]
                    await in_thread(mark_sent)(refs, self._session.limits.windowed)
                    for submission in batch.send:
                        await ws.send(serialize(submission.to_event()))
                wake_at = batch.wake_at
            timeout = None if wake_at is None else max(0.0, wake_at - time.monotonic())
            await wait_event(self._wake, timeout)

    async def _heartbeat(self, ws: ClientConnection, closing: asyncio.Event) -> None:
        while not await wait_event(closing, self._heartbeat_interval):
            pinged = time.monotonic()
            await ws.send(serialize(Ping()))
            await asyncio.sleep(self._heartbeat_timeout)
            if self._last_frame < pinged:
                raise DeadConnection(
                    f"no answer from Relay within {self._heartbeat_timeout:g} s of a ping"
                )

    # --- outcomes about the connection, not a run -----------------------------------

    async def _on_connection_outcome(self, outcome: object) -> None:
        match outcome:
            case AgentsDiscovered(agents=agents):
                await self._on_agents(agents)
            case ConnectionFailed(code=code, error=error):
                if code == ErrorCode.UNAUTHORIZED:
                    raise AuthenticationFailed("Relay rejected the app token")
                logger.error(
                    "Relay refused a request on this connection [%s]: %s",
                    loggable(code),
                    loggable(error),
                )
            case _:
                logger.debug("relay frame needs no action: %s", loggable(repr(outcome), limit=500))

    async def _fail_unreadable(self, event_id: str, reason: str) -> None:
        """An unreadable frame about a known event fails that run now, not by timeout."""
        run = await in_thread(run_for_event)(event_id)
        if run is None:
            return
        run_id = str(run.run_id)
        self._session.abandon(run_id)
        await self._streams.open(run)
        await self._streams.fail(run_id, ErrorCode.BAD_FRAME, reason)
