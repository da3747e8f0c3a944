"""The BridgeWorker: leadership, the side tasks it watches, and graceful shutdown.

While it holds the leadership lock the worker runs, side by side:

* the :class:`~.connection.RelayConnection` (the Relay connection loop),
* the intake, the sweep and the watchdog (:class:`~.intake.RunIntake`),
* lock renewal, and (always) the status record.

Every one of these is watched. The intake, the sweep, the watchdog and the status
record are restarted when they die, after a loud log with the traceback (a database
error must not end the intake silently and leave the mentions to the sweep). The
connection loop reconnects by itself; should it die all the same, the worker drains
and stops with an error (the command exits non-zero) so that its process manager,
or the standby, starts afresh. A lock keeper that ends gives up the connection.

SIGTERM stops intake and sending, lets in-flight runs finish for up to the
shutdown timeout and closes the connection cleanly; whatever is unfinished stays
in the run ledger for the next worker. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer

from .. import agents, streams
from ..batching import wait_event
from ..conf import loggable
from ..protocol import STARTER, AgentInfo, RelaySession
from ..protocol.pacing import HOUR_S
from .connection import TEARDOWN_TIMEOUT_S, RelayConnection
from .database import in_thread, recent_send_times
from .handshake import redacted
from .intake import RunIntake
from .leader import Leadership, keep_lock, try_acquire
from .options import WorkerOptions
from .run_streams import RunStreams
from .status import STATUS_REFRESH_S, WorkerStatus, clear_status, write_status

__all__ = ["BridgeWorker", "SideTaskDied", "WorkerOptions"]

logger = logging.getLogger("relaybridge.worker")

#: First pause before a side task that died is started again; it doubles up to the
#: cap while the task keeps dying, and starts over once it ran for a while.
RESTART_DELAY_S = 0.1
RESTART_DELAY_MAX_S = 10.0
#: A side task that ran this long before dying counts as healthy again.
HEALTHY_AFTER_S = 60.0


class SideTaskDied(RuntimeError):
    """A part the worker cannot run without died; the worker stopped."""


class BridgeWorker:
    def __init__(
        self,
        options: WorkerOptions,
        *,
        lock: Leadership,
        layer: BaseChannelLayer | None = None,
        stream_layer: BaseChannelLayer | None = None,
        buffer: streams.StreamBuffer | None = None,
    ) -> None:
        self.options = options
        self.lock = lock
        #: The intake arrives on ``layer``; pages are pushed to on ``stream_layer``
        #: (``RELAYBRIDGE_STREAM_LAYER``, or ``layer`` itself when one is given).
        self.layer = layer or get_channel_layer()
        if layer is not None:
            stream_layer = stream_layer or layer
        self.stream_layer = stream_layer or streams.stream_layer()
        if self.layer is None or self.stream_layer is None:
            raise RuntimeError("relaybridge needs a channel layer (CHANNEL_LAYERS)")
        self.buffer = buffer or streams.get_stream_buffer()
        self.status = WorkerStatus(
            state="starting",
            identity=getattr(lock, "identity", "worker"),
            pid=os.getpid(),
            relay_url=redacted(options.url),
        )
        self._draining = asyncio.Event()
        self._status_changed = asyncio.Event()
        #: The connection of the current leadership term (None while standing by).
        self.connection: RelayConnection | None = None
        self.intake: RunIntake | None = None
        self._died: BaseException | None = None

    # --- lifecycle ------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin a graceful drain (the first SIGTERM)."""
        if not self._draining.is_set():
            logger.info("stopping: no new runs; letting in-flight runs finish")
            self._draining.set()

    async def run(self) -> None:
        """Lead or stand by until stopped; raises :class:`SideTaskDied` if that stopped it."""
        reporter = asyncio.create_task(self._restarting("status record", self._report_status))
        try:
            while not self._draining.is_set():
                if await try_acquire(self.lock):
                    await self._lead()
                else:
                    self.status.state = "standby"
                    self._status_changed.set()
                    await wait_event(self._draining, self.lock.ttl / 3)
        finally:
            reporter.cancel()
            await asyncio.gather(reporter, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self.lock.release()
            with contextlib.suppress(Exception):  # the cache may be as unreachable as Redis
                await in_thread(clear_status)(self.status.identity)
            await self.buffer.close()
            logger.info("relay worker stopped")
        if self._died is not None:
            raise SideTaskDied("the Relay connection loop died") from self._died

    async def _lead(self) -> None:
        logger.info("holding the Relay connection for this deployment")
        options = self.options
        session = RelaySession(
            limits=options.limits or STARTER, resend_grace_s=options.resend_grace
        )
        await self._recall_sends(session)
        run_streams = RunStreams(
            self.stream_layer,
            self.buffer,
            flush_interval=options.flush_ms / 1000,
            stall_timeout=options.stall_timeout,
            max_answer_chars=options.max_answer_chars,
            resend_lost=options.resend_lost,
        )
        connection = RelayConnection(
            url=options.url,
            token=options.token,
            auth_style=options.auth_style,
            session=session,
            streams=run_streams,
            status=self.status,
            on_agents=self._store_agents,
            heartbeat_interval=options.heartbeat_interval,
            heartbeat_timeout=options.heartbeat_timeout,
            status_changed=self._status_changed,
            ca_file=options.ca_file,
        )
        intake = RunIntake(options, self.layer, connection, run_streams)
        self.connection, self.intake = connection, intake
        connection_stop = asyncio.Event()
        connection_task = asyncio.create_task(
            connection.run(connection_stop), name="relay-connection"
        )
        watchdog_every = max(0.05, min(5.0, options.stall_timeout / 4))
        helpers = [
            self._spawn("intake", intake.receive_forever),
            self._spawn("sweep", self._every(options.sweep_interval, intake.sweep)),
            self._spawn("watchdog", self._every(watchdog_every, intake.watchdog)),
            self._spawn("lost", self._every(min(0.5, options.resend_grace / 4), intake.lost)),
        ]
        keeper = asyncio.create_task(keep_lock(self.lock), name="relay-lock")
        drain = asyncio.create_task(self._draining.wait())
        try:
            await asyncio.wait(
                [keeper, drain, connection_task], return_when=asyncio.FIRST_COMPLETED
            )
            for task in helpers:
                task.cancel()
            self._check_connection(connection_task)
            if keeper.done() and not keeper.cancelled() and keeper.exception() is not None:
                logger.error("the leadership lock keeper died", exc_info=keeper.exception())
            if self._draining.is_set():
                await self._drain(connection)
        finally:
            connection_stop.set()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await asyncio.shield(connection_task)
            everything: list[asyncio.Task[Any]] = [*helpers, keeper, drain, connection_task]
            for task in everything:
                task.cancel()
            await asyncio.wait(everything, timeout=TEARDOWN_TIMEOUT_S)
            self.connection = self.intake = None

    async def _recall_sends(self, session: RelaySession) -> None:
        """Pace by the events the workers before this one sent within the hour.

        Relay's windows are per app: a worker that starts (or takes over) with empty
        windows would send what its predecessor already spent, and Relay would refuse
        it (``RATE_LIMITED``, asked again only a minute later).
        """
        try:
            sent = await in_thread(recent_send_times)(HOUR_S)
        except Exception:
            logger.exception("could not read the recent sends from the ledger; pacing from now")
            return
        # Wall-clock times from the ledger onto the session's monotonic clock.
        offset = time.monotonic() - time.time()
        session.recall_sends(at + offset for at in sent)
        if sent:
            logger.info("pacing counts %d event(s) sent within the hour before", len(sent))

    def _check_connection(self, task: asyncio.Task[None]) -> None:
        """The connection loop never ends by itself: if it did, the worker stops."""
        if not task.done() or self._draining.is_set():
            return
        error = None if task.cancelled() else task.exception()
        self._died = error or RuntimeError("the connection loop returned")
        logger.critical(
            "relay worker: the Relay connection loop died; stopping the worker",
            exc_info=error,
        )
        self.request_stop()

    async def _drain(self, connection: RelayConnection) -> None:
        self.status.state = "draining"
        self._status_changed.set()
        connection.pause()
        deadline = time.monotonic() + self.options.shutdown_timeout
        # The in-flight count lives in the pure session machine, which has no event
        # to await; a short poll is the honest way to watch it.
        while connection.counts().in_flight and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        left = connection.counts().in_flight
        if left:
            logger.warning("%d run(s) still in flight at shutdown; the next worker resumes", left)

    # --- watched side tasks ---------------------------------------------------------

    def _spawn(self, name: str, work: Callable[[], Awaitable[None]]) -> asyncio.Task[None]:
        return asyncio.create_task(self._restarting(name, work), name=f"relay-{name}")

    async def _restarting(self, name: str, work: Callable[[], Awaitable[None]]) -> None:
        """Run ``work`` until cancelled; log loudly and start it again when it dies."""
        delay = RESTART_DELAY_S
        while True:
            started = time.monotonic()
            try:
                await work()
                error: BaseException = RuntimeError(f"{name} returned")
            except Exception as exc:
                error = exc
            if time.monotonic() - started >= HEALTHY_AFTER_S:
                delay = RESTART_DELAY_S
            logger.error(
                "relay worker: the %s died; restarting it in %.1f s",
                name,
                delay,
                exc_info=error,
            )
            await asyncio.sleep(delay)
            delay = min(RESTART_DELAY_MAX_S, delay * 2)

    @staticmethod
    def _every(
        interval: float, action: Callable[[], Awaitable[None]]
    ) -> Callable[[], Awaitable[None]]:
        async def periodically() -> None:
            while True:
                await action()
                await asyncio.sleep(interval)

        return periodically

    async def _report_status(self) -> None:
        while True:
            connection = self.connection
            if connection is not None:
                counts = connection.counts()
                self.status.in_flight, self.status.queued = counts.in_flight, counts.queued
            self._status_changed.clear()
            with contextlib.suppress(Exception):
                await in_thread(write_status)(self.status.as_dict())
            await wait_event(self._status_changed, STATUS_REFRESH_S)

    async def _store_agents(self, found: tuple[AgentInfo, ...]) -> None:
        listed = [
            {"agent_id": a.agent_id, "name": a.name, "description": a.description} for a in found
        ]
        await in_thread(agents.store_directory)(listed)
        self.status.agents = [a.agent_id for a in found]
        ids = ", ".join(self.status.agents)
        logger.info("Relay lists %d agent(s): %s", len(found), loggable(ids, limit=2000))
