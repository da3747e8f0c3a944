"""The BridgeWorker: leadership, intake, sweeps, the watchdog and graceful shutdown.

While it holds the leadership lock the worker runs, side by side:

* the :class:`RelayLink` (the Relay connection),
* intake: run ids arriving on ``relaybridge.outbound`` become submissions,
* the sweep: ``sending`` runs nobody submitted (a lost intake message, a worker
  that died) and overdue ``queued``/``retrying`` runs are picked up again,
* the watchdog: an accepted or streaming run without progress for the stall
  timeout is failed visibly, its partial text kept,
* lock renewal and the status record.

SIGTERM stops intake and sending, lets in-flight runs finish for up to the
shutdown timeout and closes the connection cleanly; whatever is unfinished stays
in the ledger for the next worker. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Coroutine
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer

from .. import agents, services, streams
from ..conf import loggable
from ..models import AgentRun
from ..protocol import (
    STARTER,
    AgentInfo,
    ErrorCode,
    PayloadTooLarge,
    RelaySession,
    Submission,
)
from . import queries
from .coalesce import TokenCoalescer
from .connection import redacted
from .leader import Leadership, keep_lock, try_acquire
from .link import TEARDOWN_TIMEOUT_S, RelayLink
from .memory import MemoryReturn
from .options import WorkerOptions
from .runs import RunUpdates
from .status import STATUS_REFRESH_S, WorkerStatus, clear_status, write_status
from .waiting import in_thread, wait_event

__all__ = ["BridgeWorker", "WorkerOptions"]

logger = logging.getLogger("relaybridge.worker")

#: Longest pause between attempts to read the intake channel after layer errors.
INTAKE_RETRY_MAX_S = 5.0


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
        self._leading = False
        self.session: RelaySession | None = None
        self.link: RelayLink | None = None
        self._memory = MemoryReturn()

    # --- lifecycle ------------------------------------------------------------------

    def request_stop(self) -> None:
        """Begin a graceful drain (the first SIGTERM)."""
        if not self._draining.is_set():
            logger.info("stopping: no new runs; letting in-flight runs finish")
            self._draining.set()

    async def run(self) -> None:
        reporter = asyncio.create_task(self._report_status())
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

    async def _lead(self) -> None:
        logger.info("holding the Relay connection for this deployment")
        options = self.options
        session = RelaySession(limits=options.limits or STARTER)
        updates = RunUpdates(
            self.stream_layer,
            self.buffer,
            TokenCoalescer(options.flush_ms / 1000),
            stall_timeout=options.stall_timeout,
        )
        link = RelayLink(
            url=options.url,
            token=options.token,
            auth_style=options.auth_style,
            session=session,
            updates=updates,
            status=self.status,
            on_agents=self._store_agents,
            heartbeat_interval=options.heartbeat_interval,
            heartbeat_timeout=options.heartbeat_timeout,
            status_changed=self._status_changed,
        )
        self.session, self.link = session, link
        self._leading = True
        link_stop = asyncio.Event()
        link_task = asyncio.create_task(link.run(link_stop), name="relay-link")
        helpers = [
            self._spawn(self._intake(), "intake"),
            self._spawn(self._every(options.sweep_interval, self._sweep), "sweep"),
            self._spawn(self._every(self._watchdog_interval, self._watchdog), "watchdog"),
        ]
        keeper = self._spawn(keep_lock(self.lock), "lock")
        drain = asyncio.create_task(self._draining.wait())
        try:
            await asyncio.wait([keeper, drain, link_task], return_when=asyncio.FIRST_COMPLETED)
            for task in helpers:
                task.cancel()
            if self._draining.is_set():
                await self._drain(session, link)
        finally:
            self._leading = False
            link_stop.set()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):
                    await asyncio.shield(link_task)
            everything = [*helpers, keeper, drain, link_task]
            for task in everything:
                task.cancel()
            await asyncio.wait(everything, timeout=TEARDOWN_TIMEOUT_S)
            self.session = self.link = None

    async def _drain(self, session: RelaySession, link: RelayLink) -> None:
        self.status.state = "draining"
        self._status_changed.set()
        link.paused = True
        deadline = time.monotonic() + self.options.shutdown_timeout
        # The in-flight count lives in the pure session machine, which has no event
        # to await; a short poll is the honest way to watch it.
        while session.counts().in_flight and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        left = session.counts().in_flight
        if left:
            logger.warning("%d run(s) still in flight at shutdown; the next worker resumes", left)

    @property
    def _watchdog_interval(self) -> float:
        return max(0.05, min(5.0, self.options.stall_timeout / 4))

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        return asyncio.create_task(coro, name=f"relay-{name}")

    async def _every(self, interval: float, action: Any) -> None:
        while self._leading:
            try:
                await action()
            except Exception:
                logger.exception("relay worker %s failed; trying again", action.__name__)
            await asyncio.sleep(interval)

    async def _report_status(self) -> None:
        while True:
            if self.session is not None:
                counts = self.session.counts()
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

    # --- intake, sweep, watchdog ----------------------------------------------------

    async def _intake(self) -> None:
        channel = self.options.intake_channel
        failures = 0
        while self._leading:
            try:
                message = await self.layer.receive(channel)
            except Exception as exc:
                # A channel-layer error (Redis restarting, a socket timeout) must not
                # end the intake for good: the sweep would then be the only way in.
                failures += 1
                delay = min(INTAKE_RETRY_MAX_S, 0.1 * 2**failures)
                logger.warning("channel layer receive failed (%s); again in %.1f s", exc, delay)
                await asyncio.sleep(delay)
                continue
            failures = 0
            run_id = message.get("run_id") if isinstance(message, dict) else None
            if isinstance(run_id, str):
                await self.submit(run_id)

    async def submit(self, run_id: str) -> bool:
        """Queue a ``sending`` run for Relay (idempotent)."""
        session, link = self.session, self.link
        if session is None or link is None or session.state_of(run_id) is not None:
            return False
        run = await in_thread(services.get_run)(run_id)
        if run is None or run.status != AgentRun.Status.SENDING or not run.payload:
            return False
        await link.updates.remember(run)
        submission = Submission(
            ref=run_id, agent_id=run.agent_id, thread_id=run.thread_id, payload=run.payload
        )
        try:
            accepted = session.submit(submission)
        except PayloadTooLarge as exc:
            logger.error("run %s: %s", run_id, exc.reason)
            await link.updates.failed(run_id, ErrorCode.PAYLOAD_TOO_LARGE, exc.reason)
            return False
        link.wake.set()
        return accepted

    async def _sweep(self) -> None:
        if self.session is None:
            return
        stranded = await in_thread(queries.sending_run_ids)()
        for run_id in stranded:
            if self.session is not None and self.session.state_of(run_id) is None:
                await self.submit(run_id)
        # Straight to the intake, not through Celery: the worker is where they go.
        overdue = await in_thread(queries.overdue_run_ids)(self.options.redispatch_after)
        for run_id in overdue:
            if await in_thread(services.prepare_dispatch)(run_id) == "ready":
                await self.submit(run_id)
        if overdue:
            logger.info("re-dispatched %d run(s) whose dispatch never ran", len(overdue))

    async def _watchdog(self) -> None:
        stalled = await in_thread(queries.stalled_run_ids)(self.options.stall_timeout)
        for run_id in stalled:
            if self.session is not None:
                self.session.abandon(run_id)
            if self.link is not None:
                await self.link.updates.failed(
                    run_id, ErrorCode.STALLED, "no answer from Relay", retry=False
                )
                self.link.wake.set()
        await self._release_ended_runs()
        self._memory.check(self._carrying())

    def _carrying(self) -> int:
        """Runs the worker holds anything for: in flight, queued or remembered."""
        if self.session is None or self.link is None:
            return 0
        counts = self.session.counts()
        return counts.in_flight + counts.queued + len(self.link.updates.runs)

    async def _release_ended_runs(self) -> None:
        """Give back the thread slot and in-flight place of runs that ended while Relay
        still had them (someone pressed Stop).

        Relay has no cancel: the agent may still be answering, and a next event on the
        same thread must not collide with that answer (protocol §6.2), so the slot is
        kept while the answer may still come -- for the stall timeout after the stop,
        as for any silent run. An agent that never finishes no longer holds the thread.
        """
        session = self.session
        in_flight = session.in_flight_refs() if session is not None else []
        if session is None or not in_flight:
            return
        ended = await in_thread(queries.ended_run_ids)(in_flight, self.options.stall_timeout)
        for run_id in ended:
            session.abandon(run_id)
            if self.link is not None:
                self.link.updates.forget(run_id)
        if ended and self.link is not None:
            self.link.wake.set()
