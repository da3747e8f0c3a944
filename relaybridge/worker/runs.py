"""What Relay's answers mean for our runs: ledger updates and pushes to the page.

:class:`RunUpdates` turns the protocol core's outcomes into service calls (through
``sync_to_async``: the event loop never blocks on the ORM) and into stream events
on the thread's channel-layer group. It keeps per-run state for streaming only:
the coalescer, and which thread group a run's pushes go to.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Coroutine
from typing import Any

from channels.layers import BaseChannelLayer

from .. import agents, services, streams
from ..conf import loggable
from ..models import AgentRun
from ..protocol import Reply, RetryDecision, decide_retry, describe_decision, describe_error
from .coalesce import Delta, TokenCoalescer
from .ordering import RunChains
from .run_info import RunInfo, accepted_status, run_info, saved_reply
from .starts import FirstTokenWrites
from .waiting import in_thread, wait_event

logger = logging.getLogger("relaybridge.worker")

#: How often a streaming run's ``updated_at`` is refreshed, so the watchdog sees progress.
TOUCH_EVERY_S = 5.0
#: Channel-layer calls, and buffer calls, in flight at once (each). Runs push
#: concurrently; unbounded, a few hundred runs would exhaust a Redis connection pool.
MAX_CONCURRENT_PUSHES = 32


class RunUpdates:
    def __init__(
        self,
        layer: BaseChannelLayer,
        buffer: streams.StreamBuffer,
        coalescer: TokenCoalescer,
        *,
        stall_timeout: float,
        clock: Any = time.monotonic,
    ) -> None:
        self.layer = layer
        self.buffer = buffer
        self.coalescer = coalescer
        self.clock = clock
        self.runs: dict[str, RunInfo] = {}
        # Well within the stall timeout: a run that streams must never look stalled
        # to the watchdog between two touches, however short the timeout is set.
        self.touch_every = min(TOUCH_EVERY_S, stall_timeout / 4)
        #: Each run's pushes, in order (see ordering.py).
        self._chains = RunChains()
        #: Progress writes of streaming runs, made beside their streams.
        self._touches: set[asyncio.Task[None]] = set()
        self.first_tokens = FirstTokenWrites(self._touch)
        #: Set when a run's pending text falls due before the flusher planned to wake.
        self._flush_wake = asyncio.Event()
        self._flush_at: float | None = None
        self._layer_slots = asyncio.Semaphore(MAX_CONCURRENT_PUSHES)
        self._redis_slots = asyncio.Semaphore(MAX_CONCURRENT_PUSHES)

    # --- bookkeeping -------------------------------------------------------------

    async def remember(self, run: AgentRun) -> RunInfo:
        info = await in_thread(run_info)(run)
        self.runs[info.run_id] = info
        if run.status in (AgentRun.Status.ACCEPTED, AgentRun.Status.STREAMING):
            # Streamed by an earlier connection or worker: continue its numbering, or
            # the buffer and the pages would drop the new text as already seen.
            _text, seq = await self.snapshot(info.run_id)
            self.coalescer.resume(info.run_id, seq)
        return info

    # --- the text-so-far buffer: trouble there costs a snapshot, never the connection

    async def snapshot(self, run_id: str) -> tuple[str, int]:
        try:
            async with self._redis_slots:
                return await self.buffer.snapshot(run_id)
        except Exception:
            logger.exception("could not read the stream buffer of run %s", run_id)
            return "", 0

    async def _buffer(self, action: str, run_id: str, *args: Any) -> None:
        try:
            async with self._redis_slots:
                await getattr(self.buffer, action)(run_id, *args)
        except Exception:
            logger.exception("could not %s the stream buffer of run %s", action, run_id)

    async def lookup(self, run_id: str) -> RunInfo | None:
        info = self.runs.get(run_id)
        if info is None:
            run = await in_thread(services.get_run)(run_id)
            if run is None:
                return None
            info = await self.remember(run)
        return info

    def forget(self, run_id: str) -> None:
        self.runs.pop(run_id, None)
        self.coalescer.forget(run_id)

    # --- pushes ------------------------------------------------------------------

    async def push(self, group: str, event: dict[str, Any]) -> None:
        try:
            async with self._layer_slots:
                await self.layer.group_send(group, streams.group_message(event))
        except Exception:
            # A page that misses a push catches up from the snapshot on reconnect;
            # a channel-layer hiccup must never take the relay connection down.
            logger.exception("could not push %s to %s", event.get("type"), group)

    async def push_status(self, run_id: str) -> None:
        info = self.runs.get(run_id)
        run = await in_thread(services.get_run)(run_id)
        if info is None or run is None:
            return
        text, seq = await self.snapshot(run_id)
        event = await in_thread(streams.status_event)(run, text, seq)
        await self.push(info.group, event)

    async def _push_run_event(self, run_id: str, event: dict[str, Any]) -> None:
        info = self.runs.get(run_id)
        if info is not None and event:
            await self.push(info.group, event)

    async def push_delta(self, delta: Delta) -> None:
        await self._push_in_order(delta)

    def _push_in_order(self, delta: Delta) -> asyncio.Task[None]:
        """Push ``delta`` after the run's earlier pushes (see ordering.py)."""
        return self._chains.then(delta.run, functools.partial(self._push_delta_now, delta))

    async def _push_delta_now(self, delta: Delta) -> None:
        info = self.runs.get(delta.run)
        if info is None:
            return
        # Buffer first, then push: a page that reads the snapshot after this point
        # has the text; one that got the push dedupes by ``seq``.
        await self._buffer("append", delta.run, delta.seq, delta.text)
        await self.push(info.group, streams.delta_event(delta.run, delta.seq, delta.text))

    async def flush_due(self) -> None:
        pushes = [self._push_in_order(delta) for delta in self.coalescer.due(self.clock())]
        if pushes:
            await asyncio.wait(pushes)

    async def flush_forever(self) -> None:
        """Push coalesced text as it falls due (the relay link runs this as a task)."""
        while True:
            self._flush_wake.clear()
            await self.flush_due()
            self._flush_at = self.coalescer.next_due()
            wait = None if self._flush_at is None else max(0.0, self._flush_at - self.clock())
            await wait_event(self._flush_wake, wait)

    def _pending_added(self, run_id: str) -> None:
        # Wake the flusher only when this run falls due before its planned wake-up:
        # usually it does not, so a token costs no wake-up.
        due = self.coalescer.due_at(run_id)
        if due is not None and (self._flush_at is None or due < self._flush_at):
            self._flush_at = due
            self._flush_wake.set()

    # --- outcomes ----------------------------------------------------------------

    async def accepted(self, run_id: str, event_id: str) -> None:
        seq = self.coalescer.last_seq(run_id)
        event = await in_thread(accepted_status)(run_id, event_id, seq)
        if event is not None:
            await self._push_run_event(run_id, event)
        else:
            logger.warning(
                "run %s: accepted as %s but the run had moved on", run_id, loggable(event_id)
            )

    async def token(self, run_id: str, text: str) -> None:
        info = await self.lookup(run_id)
        if info is None or info.ended:
            return
        now = self.clock()
        if not info.streaming:
            info.streaming = True
            info.last_touch = now
            # The first text goes out at once; the write that marks the run
            # streaming follows, with those of other runs (see starts.py).
            self.first_tokens.add(info)
        elif now - info.last_touch >= self.touch_every:
            info.last_touch = now
            # Beside the stream, not in its way: runs that started together would all
            # pause for this write at the same instant. A stop is still noticed here,
            # a write's time later (it always waited up to a touch interval).
            self._beside(self._touch(info))
        delta = self.coalescer.add(run_id, text, now)
        if delta is not None:
            await self.push_delta(delta)
        else:
            self._pending_added(run_id)

    def _beside(self, write: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.create_task(write)
        self._touches.add(task)
        task.add_done_callback(self._touches.discard)
        return task

    async def _touch(self, info: RunInfo) -> None:
        # ``touch`` succeeds only for accepted or streaming runs, so a failed touch
        # means the run was stopped (or otherwise ended) meanwhile.
        try:
            if await in_thread(services.touch)(info.run_id):
                return
        except Exception:
            logger.exception("run %s: could not record progress", info.run_id)
            return
        info.ended = True
        if self.runs.get(info.run_id) is info:
            self.coalescer.forget(info.run_id)

    async def reply(self, run_id: str, reply: Reply) -> None:
        info = await self.lookup(run_id)
        if info is None:
            return
        pending = self.coalescer.flush(run_id, self.clock())
        if pending is not None:
            await self.push_delta(pending)
        # The run's end must not overtake the write of its first token.
        await self.first_tokens.written(run_id)
        metadata = {
            "tokens_used": reply.metadata.tokens_used,
            "model": reply.metadata.model,
            "latency_ms": reply.metadata.latency_ms,
        }
        saved = await in_thread(saved_reply)(run_id, reply.reply, metadata)
        if saved is None:
            logger.info("run %s: reply already saved; this one is ignored", run_id)
        else:
            comment_pk, html = saved
            await self.push(
                info.group, streams.reply_event(run_id, comment_pk, html, info.agent_id)
            )
        await self._buffer("clear", run_id)
        self.forget(run_id)

    async def failed(
        self, run_id: str, code: str, error: str, *, retry: bool = True
    ) -> RetryDecision | None:
        """A run's attempt failed: retry per the error-code policy, or fail visibly.

        Returns the policy's decision (the caller re-discovers agents when it says
        so), or None for a run this worker does not know.
        """
        info = await self.lookup(run_id)
        if info is None:
            return None
        pending = self.coalescer.flush(run_id, self.clock())
        if pending is not None:
            await self.push_delta(pending)
        # The run's end must not overtake the write of its first token.
        await self.first_tokens.written(run_id)
        # Retries are counted per code: consecutive attempts that failed the same way.
        retries_so_far = info.attempts - 1 if info.last_error_code == code else 0
        decision = decide_retry(code, retries_so_far)
        retry_in = decision.delay_s if retry and decision.retry else None
        if retry_in is not None:
            message = describe_decision(decision, agent=info.agent_name)
        else:
            message = describe_error(code, agent=info.agent_name)
        logger.log(
            logging.ERROR if decision.policy.loud else logging.INFO,
            "run %s (%s): %s [%s]; Relay said: %s",
            run_id,
            info.agent_id,
            message,
            code,
            loggable(error, limit=2000),
        )
        partial, _seq = await self.snapshot(run_id)
        changed = await in_thread(services.record_error)(
            run_id, code, message, retry_in, partial_text=partial or None
        )
        if decision.policy.mark_agent_unavailable:
            await in_thread(agents.mark_unavailable)(info.agent_id)
        if changed:
            await self.push(info.group, streams.error_event(run_id, code, message, retry_in))
            await self.push_status(run_id)
        await self._buffer("clear", run_id)
        self.forget(run_id)
        return decision
