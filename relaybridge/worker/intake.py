"""Where runs come in, and the watch kept on the runs the worker carries.

* The intake: run ids arriving on ``relaybridge.outbound`` are submitted to the
  connection, each run's stream knowing the run first.
* The sweep: ``sending`` runs nobody submitted (a lost intake message, a worker that
  died) are submitted; overdue ``queued``/``retrying`` runs (a ``dispatch_run`` that
  never ran or died) are claimed here and submitted too, never sent back through
  Celery to this same worker.
* The watchdog: an accepted or streaming run without progress for the stall timeout
  on a healthy connection is failed visibly, its partial text kept (one whose
  connection closed is asked again instead, see :meth:`RunIntake.lost`); so is one still going
  ``RELAYBRIDGE_MAX_ANSWER_SECONDS`` after Relay accepted it (an agent that trickles
  a byte now and then never looks stalled); runs stopped from a page, or cut off,
  give back their thread slot; and once the worker is idle, memory goes back to the
  system.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import math
import time
from collections.abc import Callable

from channels.layers import BaseChannelLayer

from .. import services
from ..models import AgentRun
from ..protocol import ErrorCode, PayloadTooLarge, Submission
from .connection import RelayConnection
from .database import (
    answering_runs,
    ended_run_ids,
    in_thread,
    overdue_run_ids,
    overlong_run_ids,
    run_with_facts,
    sending_run_ids,
    stalled_run_ids,
)
from .options import WorkerOptions
from .run_streams import RunStreams

logger = logging.getLogger("relaybridge.worker")

#: How long the moment a run was asked again is remembered (far longer than a pass).
RESENT_MEMORY_S = 600.0
#: Longest pause between attempts to read the intake channel after layer errors.
INTAKE_RETRY_MAX_S = 5.0


class RunIntake:
    def __init__(
        self,
        options: WorkerOptions,
        layer: BaseChannelLayer,
        connection: RelayConnection,
        streams: RunStreams,
    ) -> None:
        self.options = options
        self.layer = layer
        self.connection = connection
        self.streams = streams
        self.memory = MemoryReturn()
        #: The connection (by count) after which the ledger was last read.
        self._ledger_read_for = 0
        #: When runs were last asked again (monotonic, once the ledger had the new
        #: attempt), so that a watchdog pass that read the ledger before then does not
        #: take the run for a stalled one.
        self._resent_at: dict[str, float] = {}
        #: Answers reported lost and not yet asked again, oldest first (a dict as an
        #: ordered set). They left the session's watch all at once but are sent again
        #: one after another; until the ledger shows a run's new attempt it looks
        #: stalled (silent since before the connection closed), so the watchdog skips
        #: these.
        self._to_resend: dict[str, None] = {}

    async def receive_forever(self) -> None:
        """Submit the runs that arrive on the intake channel."""
        failures = 0
        while True:
            try:
                message = await self.layer.receive(self.options.intake_channel)
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
        if self.connection.carries(run_id):
            return False
        # The run and its stream's facts in one trip: every mention waits for it.
        found = await in_thread(run_with_facts)(run_id)
        if found is None:
            return False
        run, facts = found
        if run.status != AgentRun.Status.SENDING or not run.payload:
            return False
        await self.streams.open(run, facts)
        # Whose turn the run waits for: the person at the start of an agent-hop chain
        # is looked up; anyone else's key is on the run already (no query).
        if run.requested_by_id is None and run.hop_depth > 0:
            asker = await in_thread(services.asker_key)(run)
        else:
            asker = services.asker_key(run)
        submission = Submission(
            ref=run_id,
            agent_id=run.agent_id,
            thread_id=run.thread_id,
            payload=run.payload,
            asker=asker,
        )
        try:
            return self.connection.submit(submission)
        except PayloadTooLarge as exc:
            logger.error("run %s: %s", run_id, exc.reason)
            await self.streams.fail(run_id, ErrorCode.PAYLOAD_TOO_LARGE, exc.reason)
            return False

    async def sweep(self) -> None:
        for run_id in await in_thread(sending_run_ids)():
            if not self.connection.carries(run_id):
                await self.submit(run_id)
        # Straight to the connection, not through Celery: this worker is where they go.
        overdue = await in_thread(overdue_run_ids)(self.options.redispatch_after)
        for run_id in overdue:
            if await in_thread(services.prepare_dispatch)(run_id) == "ready":
                await self.submit(run_id)
        if overdue:
            logger.info("re-dispatched %d run(s) whose dispatch never ran", len(overdue))

    async def watchdog(self) -> None:
        stall_timeout = self.options.stall_timeout
        connection = self.connection
        # Only on a healthy connection: a run whose connection closed is known lost, and
        # is asked again (or failed) after the grace (:meth:`lost`), not left to stall.
        healthy = connection.connected and self._ledger_read_for == connection.connections
        looked_at = time.monotonic()
        stalled = await in_thread(stalled_run_ids)(stall_timeout) if healthy else []
        # Read after the query: a run asked again meanwhile is a new attempt, not stalled.
        unheard = set(connection.unheard_refs())
        for run_id in stalled:
            if run_id in unheard or run_id in self._to_resend:
                continue
            # The ledger's progress trails the stream (its writes are gathered, and
            # wait behind the worker's other queries): a run whose tokens still come
            # only looks stalled there.
            if self.streams.heard_within(run_id, stall_timeout):
                continue
            if self._resent_at.get(run_id, -math.inf) >= looked_at:
                continue
            self.connection.abandon(run_id)
            await self.streams.fail(run_id, ErrorCode.STALLED, "no answer from Relay", retry=False)
        limit = self.options.max_answer_seconds
        for run_id in await in_thread(overlong_run_ids)(limit):
            # Not abandoned: the agent may still be answering, so the run keeps its
            # thread slot until it ends or the stall timeout passes (as for a stop).
            message = f"still answering after RELAYBRIDGE_MAX_ANSWER_SECONDS ({limit:g} s)"
            await self.streams.fail(run_id, ErrorCode.ANSWER_TOO_SLOW, message, retry=False)
        await self._release_ended_runs()
        counts = self.connection.counts()
        self.memory.check(counts.in_flight + counts.queued + len(self.streams))

    async def lost(self) -> None:
        """Ask again for the answers lost with a connection; watch those left by the ledger.

        After each new connection, runs the ledger has accepted or streaming that this
        worker does not carry (an earlier worker or leader sent them) are watched like
        the answers of a closed connection: a frame of theirs within the grace shows
        the answer is still coming; without one, it is lost.
        """
        connection = self.connection
        if connection.connected and connection.connections != self._ledger_read_for:
            self._ledger_read_for = connection.connections
            for run_id, event_id in await in_thread(answering_runs)():
                if not connection.carries(run_id):
                    connection.watch_unheard(run_id, event_id)
        self._to_resend.update(dict.fromkeys(connection.lost_answers()))
        while self._to_resend:
            run_id = next(iter(self._to_resend))
            try:
                await self.resend(run_id)
            except Exception:
                # Left to the watchdog, which ends it visibly; the others still go.
                logger.exception("run %s: could not ask again for its lost answer", run_id)
            finally:
                self._to_resend.pop(run_id, None)

    async def resend(self, run_id: str) -> None:
        """The run's answer was lost: send it again (a new attempt), or fail it visibly."""
        self.connection.abandon(run_id)
        error = "no frame of the event within the grace after the connection closed"
        decision = await self.streams.fail(run_id, ErrorCode.CONNECTION_LOST, error)
        # Recorded (retrying, or failed): from now on the ledger says so.
        now = time.monotonic()
        self._resent_at = {
            ref: at for ref, at in self._resent_at.items() if now - at < RESENT_MEMORY_S
        }
        self._resent_at[run_id] = now
        if decision is None or not decision.retry:
            return
        # Stopped meanwhile: the claim fails and the run stays stopped.
        if await in_thread(services.prepare_dispatch)(run_id) == "ready":
            logger.info("run %s: its answer was lost with the connection; asked again", run_id)
            await self.submit(run_id)
        else:
            logger.info("run %s: its answer was lost, and it ended meanwhile", run_id)

    async def _release_ended_runs(self) -> None:
        """Give back the thread slot and in-flight place of runs that ended while Relay
        still had them (someone pressed Stop).

        Relay has no cancel: the agent may still be answering, and a next event on the
        same thread must not collide with that answer (protocol §6.2), so the slot is
        kept while the answer may still come -- for the stall timeout after the stop,
        as for any silent run. An agent that never finishes no longer holds the thread.
        """
        in_flight = self.connection.in_flight()
        if not in_flight:
            return
        for run_id in await in_thread(ended_run_ids)(in_flight, self.options.stall_timeout):
            self.connection.abandon(run_id)
            self.streams.forget(run_id)


# --- memory given back -----------------------------------------------------------------
#
# A thousand runs streaming at once take a few tens of megabytes (their texts, frames
# and tasks). When they end, CPython and the C allocator keep most of the freed
# memory for later instead of returning it, so the worker's resident size stays near
# its peak for good. The first time the worker is idle after carrying runs, a full
# garbage collection and glibc's ``malloc_trim`` give the free pages back. Idle means
# nothing in flight, nothing queued and no run remembered, so the pause (a few
# milliseconds) never falls on a stream.


def _load_malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``; None elsewhere (musl, macOS), where nothing is trimmed."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_malloc_trim = _load_malloc_trim()


class MemoryReturn:
    """Remembers whether runs were carried since memory was last given back."""

    def __init__(self) -> None:
        self._carried = False

    def check(self, carrying: int) -> bool:
        """Call now and then with how many runs the worker carries; True if it trimmed."""
        if carrying:
            self._carried = True
            return False
        if not self._carried:
            return False
        self._carried = False
        gc.collect()
        if _malloc_trim is not None:
            _malloc_trim(0)
        logger.debug("idle again: memory given back to the system")
        return True
