"""The Relay connection: connect, reconnect, read, send and heartbeat.

One :class:`RelayLink` owns the deployment's connection. It reconnects forever
with the protocol core's backoff (auth failures back off to the cap instead of
reconnecting hot), runs Relay's JSON heartbeat (a ``ping`` every interval; no frame
at all within the timeout means the connection is dead), feeds every frame to the
session state machine and hands the outcomes to :class:`RunUpdates`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from ..conf import loggable
from ..protocol import (
    AgentInfo,
    AgentsDiscovered,
    Backoff,
    ConnectionFailed,
    Error,
    ErrorCode,
    EventFailed,
    Ping,
    ProtocolError,
    RelaySession,
    Reply,
    ReplyReceived,
    SubmissionAccepted,
    SubmissionRejected,
    Token,
    TokenReceived,
    UnknownEvent,
    parse,
    serialize,
)
from ..protocol.outcomes import Outcome
from . import queries
from .connection import (
    AUTH_CLOSE_CODE,
    AuthenticationFailed,
    AuthStyle,
    RelayConnectError,
    open_relay_connection,
    redacted,
)
from .lanes import RunLanes
from .runs import RunUpdates
from .status import WorkerStatus
from .waiting import in_thread, wait_event

logger = logging.getLogger("relaybridge.worker")


#: How long a closed connection's loops get to finish before they are left behind.
TEARDOWN_TIMEOUT_S = 5.0


class DeadConnection(Exception):
    """No frame arrived within the heartbeat timeout."""


class RelayLink:
    def __init__(
        self,
        *,
        url: str,
        token: str,
        auth_style: AuthStyle,
        session: RelaySession,
        updates: RunUpdates,
        status: WorkerStatus,
        on_agents: Callable[[tuple[AgentInfo, ...]], Awaitable[None]],
        heartbeat_interval: float,
        heartbeat_timeout: float,
        backoff: Backoff | None = None,
        status_changed: asyncio.Event | None = None,
    ) -> None:
        self.url = url
        self._token = token
        self.auth_style = auth_style
        self.session = session
        self.updates = updates
        self.status = status
        self.on_agents = on_agents
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.backoff = backoff or Backoff()
        #: Set on every connection state change, so the status record is rewritten now.
        self.status_changed = status_changed or asyncio.Event()
        #: Set whenever there may be something to send (a submission, a released gate).
        self.wake = asyncio.Event()
        #: While paused (draining), nothing new is sent; answers are still read.
        self.paused = False
        self.connections = 0
        self._last_frame = 0.0
        #: Frames' database and push work, per run, off the read loop (see lanes.py).
        self.lanes = RunLanes(updates.token)
        #: (agent, thread) -> the run whose reply or error is still being recorded: the
        #: thread's next event waits for it, so runs of one thread stay one after another.
        self._settling: dict[tuple[str, str], str] = {}

    def __repr__(self) -> str:  # the token never appears in a repr
        return f"<RelayLink {redacted(self.url)}>"

    # --- the reconnect loop ---------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Hold the connection until ``stop`` is set; then let the lanes finish."""
        flusher = asyncio.create_task(self.updates.flush_forever(), name="relay-flush")
        try:
            await self._connect_until(stop)
        finally:
            if not await self.lanes.wait_idle(seconds=TEARDOWN_TIMEOUT_S):
                logger.warning("%d run(s) still had frames to handle at shutdown", len(self.lanes))
            flusher.cancel()
            await asyncio.wait([flusher], timeout=TEARDOWN_TIMEOUT_S)

    async def _connect_until(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.status.state = "connecting"
            logger.info("connecting to %s", redacted(self.url))
            started = time.monotonic()
            try:
                ws = await open_relay_connection(self.url, self._token, auth_style=self.auth_style)
                await self._serve(ws, stop)
                self.backoff.connection_closed(time.monotonic() - started)
                if stop.is_set():
                    return
                delay = self.backoff.next_delay()
                self._lost("the connection to Relay closed", "backing_off", delay)
            except AuthenticationFailed as exc:
                delay = self.backoff.next_auth_failure_delay()
                logger.error("%s; check RELAY_APP_TOKEN (retrying in %.0f s)", exc, delay)
                self._lost(str(exc), "auth_failed", delay)
            except (RelayConnectError, DeadConnection, ConnectionClosed, OSError) as exc:
                delay = self.backoff.next_delay()
                self._lost(str(exc) or type(exc).__name__, "backing_off", delay)
            await wait_event(stop, delay)

    def _lost(self, reason: str, state: str, delay: float) -> None:
        if state != "auth_failed":
            logger.warning("%s; reconnecting in %.1f s", reason, delay)
        self.status.state = state
        self.status.last_error = reason
        self.status.connected_since = None
        self.status.next_attempt_at = time.time() + delay
        self.status_changed.set()

    async def _serve(self, ws: ClientConnection, stop: asyncio.Event) -> None:
        self.connections += 1
        self._last_frame = time.monotonic()
        self.status.state = "connected"
        self.status.connected_since = time.time()
        self.status.last_error = None
        self.status_changed.set()
        logger.info("connected to %s", redacted(self.url))
        # Loops check ``closing`` as well as being cancelled: some libraries awaited
        # inside them can swallow a cancellation (see waiting.py).
        closing = asyncio.Event()
        tasks = [
            asyncio.create_task(self._read(ws), name="relay-read"),
            asyncio.create_task(self._send_loop(ws, closing), name="relay-send"),
            asyncio.create_task(self._heartbeat(ws, closing), name="relay-heartbeat"),
            asyncio.create_task(stop.wait(), name="relay-stop"),
        ]
        try:
            self.session.on_connect()
            await self._send_answers(ws)
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            closing.set()
            self.wake.set()
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks, timeout=TEARDOWN_TIMEOUT_S)
            if stop.is_set():
                await ws.close(1000, "relay worker shutting down")
            else:
                ws.transport.abort()
            requeued = self.session.on_disconnect()
            if requeued:
                logger.info("%d sent but unaccepted run(s) will be sent again", len(requeued))
            if ws.close_code == AUTH_CLOSE_CODE:
                raise AuthenticationFailed("Relay rejected the app token (close code 4001)")

    # --- the three loops of one connection -----------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            self._last_frame = time.monotonic()
            self.status.last_frame_at = time.time()
            try:
                frame = parse(message)
            except ProtocolError as exc:
                logger.warning("ignoring a malformed frame from Relay: %s", exc.reason)
                if exc.event_id is not None:
                    fail = functools.partial(self._fail_unreadable, exc.event_id, exc.reason)
                    self.lanes.call(f"event:{exc.event_id}", fail)
                continue
            gate_moved = False
            for outcome in self.session.on_frame(frame):
                await self._handle(outcome)
                # Only a frame that settles or refuses an event can free a send slot;
                # tokens (nearly every frame) need not wake the send loop.
                gate_moved = gate_moved or not isinstance(outcome, TokenReceived)
            await self._send_answers(ws)
            if gate_moved:
                self.wake.set()

    async def _send_answers(self, ws: ClientConnection) -> None:
        """Send what the session decided to answer (a pong, a discover)."""
        for frame in self.session.data_to_send():
            await ws.send(serialize(frame))

    async def _send_loop(self, ws: ClientConnection, closing: asyncio.Event) -> None:
        while not closing.is_set():
            self.wake.clear()
            wake_at = None
            if not self.paused:
                batch = self.session.next_sends()
                if batch.send:
                    for submission in batch.send:
                        thread = (submission.agent_id, submission.thread_id)
                        previous = self._settling.pop(thread, None)
                        if previous is not None:
                            await self.lanes.done(previous)
                    refs = [submission.ref for submission in batch.send]
                    await in_thread(queries.mark_sent)(refs)
                    for submission in batch.send:
                        await ws.send(serialize(submission.to_event()))
                wake_at = batch.wake_at
            timeout = None if wake_at is None else max(0.0, wake_at - time.monotonic())
            await wait_event(self.wake, timeout)

    async def _heartbeat(self, ws: ClientConnection, closing: asyncio.Event) -> None:
        while not await wait_event(closing, self.heartbeat_interval):
            pinged = time.monotonic()
            await ws.send(serialize(Ping()))
            await asyncio.sleep(self.heartbeat_timeout)
            if self._last_frame < pinged:
                raise DeadConnection(
                    f"no answer from Relay within {self.heartbeat_timeout:g} s of a ping"
                )

    # --- outcomes -------------------------------------------------------------------

    async def _handle(self, outcome: Outcome) -> None:
        """Queue the run's database and push work in its lane."""
        updates, lanes = self.updates, self.lanes
        match outcome:
            case SubmissionAccepted(ref=ref, event_id=event_id):
                lanes.call(ref, lambda: updates.accepted(ref, event_id))
            case TokenReceived(ref=ref, text=text):
                lanes.token(ref, text)
            case ReplyReceived(ref=ref, reply=reply):
                _check_echo(ref, reply)
                lanes.call(ref, lambda: updates.reply(ref, reply))
                self._settle(ref)
            case (
                SubmissionRejected(ref=ref, code=code, error=error)
                | EventFailed(ref=ref, code=code, error=error)
            ):
                lanes.call(ref, lambda: updates.failed(ref, code, error))
                self._settle(ref)
            case AgentsDiscovered(agents=agents):
                await self.on_agents(agents)
            case ConnectionFailed(code=code, error=error):
                if code == ErrorCode.UNAUTHORIZED:
                    raise AuthenticationFailed("Relay rejected the app token")
                logger.error(
                    "Relay refused a request on this connection [%s]: %s",
                    loggable(code),
                    loggable(error),
                )
            case UnknownEvent(frame=frame):
                lane = f"event:{getattr(frame, 'event_id', None)}"
                lanes.call(lane, functools.partial(self._adopt, frame))
            case _:
                logger.debug("relay frame needs no action: %r", outcome)

    def _settle(self, ref: str) -> None:
        """Hold the run's thread until its terminal frame (queued just now) is recorded."""
        info = self.updates.runs.get(ref)
        if info is None:
            return
        thread = (info.agent_id, info.thread_id)
        self._settling[thread] = ref

        async def settled() -> None:
            if self._settling.get(thread) == ref:
                del self._settling[thread]

        self.lanes.call(ref, settled)

    async def _fail_unreadable(self, event_id: str, reason: str) -> None:
        """An unreadable frame about a known event fails that run now, not by timeout."""
        run = await in_thread(queries.run_for_event)(event_id)
        if run is None:
            return
        run_id = str(run.run_id)
        self.session.abandon(run_id)
        await self.updates.remember(run)
        await self.updates.failed(run_id, ErrorCode.BAD_FRAME, reason)

    async def _adopt(self, frame: object) -> None:
        """A frame for an event this connection did not send (an earlier worker did)."""
        event_id = getattr(frame, "event_id", None)
        run = await in_thread(queries.run_for_event)(event_id) if event_id else None
        if run is None:
            logger.info("ignoring a frame for unknown event %s", loggable(event_id))
            return
        run_id = str(run.run_id)
        await self.updates.remember(run)
        if isinstance(frame, Token):
            await self.updates.token(run_id, frame.token)
        elif isinstance(frame, Reply):
            await self.updates.reply(run_id, frame)
        elif isinstance(frame, Error):
            await self.updates.failed(run_id, frame.normalized_code, frame.error)


def _check_echo(ref: str, reply: Reply) -> None:
    """``reply.payload`` echoes our run id: an end-to-end check of correlation."""
    echoed = reply.payload.get("relaybridge_run") if reply.payload else None
    if echoed is not None and echoed != ref:
        logger.error("reply for run %s echoes run %s: correlation is off", ref, loggable(echoed))
