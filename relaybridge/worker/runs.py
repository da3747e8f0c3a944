"""What Relay's answers mean for our runs: ledger updates and pushes to the page.

:class:`RunUpdates` turns the protocol core's outcomes into service calls (through
``sync_to_async``: the event loop never blocks on the ORM) and into stream events
on the thread's channel-layer group. It keeps per-run state for streaming only:
the coalescer, and which thread group a run's pushes go to.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from channels.layers import BaseChannelLayer

from .. import agents, services, streams
from ..conf import redact
from ..models import AgentRun
from ..protocol import Reply, RetryDecision, decide_retry, describe_decision, describe_error
from ..rendering import render_agent_markdown
from .coalesce import Delta, TokenCoalescer
from .waiting import in_thread

logger = logging.getLogger("relaybridge.worker")

#: How often a streaming run's ``updated_at`` is refreshed, so the watchdog sees progress.
TOUCH_EVERY_S = 5.0


@dataclass(slots=True)
class RunInfo:
    """What the worker remembers about a run it carries."""

    run_id: str
    agent_id: str
    thread_id: str
    group: str
    agent_name: str
    attempts: int
    last_error_code: str
    streaming: bool = False
    last_touch: float = 0.0
    #: Stopped from a page (Relay has no cancel): the agent may go on; we drop its tokens.
    ended: bool = False


def _load(run_id: str) -> AgentRun | None:
    return services.get_run(run_id)


def _info(run: AgentRun) -> RunInfo:
    from ..adapters import get_adapter

    return RunInfo(
        run_id=str(run.run_id),
        agent_id=run.agent_id,
        thread_id=run.thread_id,
        group=streams.group_name_for_thread(run.thread_key),
        agent_name=get_adapter().agent_display_name(run.agent_id),
        attempts=run.attempts,
        last_error_code=run.error_code,
        streaming=run.status == AgentRun.Status.STREAMING,
    )


class RunUpdates:
    def __init__(
        self,
        layer: BaseChannelLayer,
        buffer: streams.StreamBuffer,
        coalescer: TokenCoalescer,
        *,
        clock: Any = time.monotonic,
    ) -> None:
        self.layer = layer
        self.buffer = buffer
        self.coalescer = coalescer
        self.clock = clock
        self.runs: dict[str, RunInfo] = {}

    # --- bookkeeping -------------------------------------------------------------

    async def remember(self, run: AgentRun) -> RunInfo:
        info = await in_thread(_info)(run)
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
            return await self.buffer.snapshot(run_id)
        except Exception:
            logger.exception("could not read the stream buffer of run %s", run_id)
            return "", 0

    async def _buffer(self, action: str, run_id: str, *args: Any) -> None:
        try:
            await getattr(self.buffer, action)(run_id, *args)
        except Exception:
            logger.exception("could not %s the stream buffer of run %s", action, run_id)

    async def lookup(self, run_id: str) -> RunInfo | None:
        info = self.runs.get(run_id)
        if info is None:
            run = await in_thread(_load)(run_id)
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
            await self.layer.group_send(group, streams.group_message(event))
        except Exception:
            # A page that misses a push catches up from the snapshot on reconnect;
            # a channel-layer hiccup must never take the relay connection down.
            logger.exception("could not push %s to %s", event.get("type"), group)

    async def push_status(self, run_id: str) -> None:
        info = self.runs.get(run_id)
        run = await in_thread(_load)(run_id)
        if info is None or run is None:
            return
        text, seq = await self.snapshot(run_id)
        event = await in_thread(streams.status_event)(run, text, seq)
        await self.push(info.group, event)

    async def push_delta(self, delta: Delta) -> None:
        info = self.runs.get(delta.run)
        if info is None:
            return
        # Buffer first, then push: a page that reads the snapshot after this point
        # has the text; one that got the push dedupes by ``seq``.
        await self._buffer("append", delta.run, delta.seq, delta.text)
        await self.push(info.group, streams.delta_event(delta.run, delta.seq, delta.text))

    async def flush_due(self) -> None:
        for delta in self.coalescer.due(self.clock()):
            await self.push_delta(delta)

    # --- outcomes ----------------------------------------------------------------

    async def accepted(self, run_id: str, event_id: str) -> None:
        if await in_thread(services.mark_accepted)(run_id, event_id):
            await self.push_status(run_id)
        else:
            logger.warning("run %s: accepted as %s but the run had moved on", run_id, event_id)

    async def token(self, run_id: str, text: str) -> None:
        info = await self.lookup(run_id)
        if info is None or info.ended:
            return
        now = self.clock()
        # ``touch`` succeeds only for accepted or streaming runs, so a failed touch
        # means the run was stopped (or otherwise ended) meanwhile.
        if not info.streaming:
            info.streaming = True
            info.last_touch = now
            if await in_thread(services.record_first_token)(run_id):
                await self.push_status(run_id)
            elif not await in_thread(services.touch)(run_id):
                info.ended = True
                return
        elif now - info.last_touch >= TOUCH_EVERY_S:
            info.last_touch = now
            if not await in_thread(services.touch)(run_id):
                info.ended = True
                self.coalescer.forget(run_id)
                return
        delta = self.coalescer.add(run_id, text, now)
        if delta is not None:
            await self.push_delta(delta)

    async def reply(self, run_id: str, reply: Reply) -> None:
        info = await self.lookup(run_id)
        if info is None:
            return
        pending = self.coalescer.flush(run_id, self.clock())
        if pending is not None:
            await self.push_delta(pending)
        metadata = {
            "tokens_used": reply.metadata.tokens_used,
            "model": reply.metadata.model,
            "latency_ms": reply.metadata.latency_ms,
        }
        comment = await in_thread(services.record_reply)(run_id, reply.reply, metadata)
        if comment is None:
            logger.info("run %s: reply already saved; this one is ignored", run_id)
        else:
            html = await in_thread(render_agent_markdown)(reply.reply)
            event = streams.reply_event(run_id, comment.pk, html, info.agent_id)
            await self.push(info.group, event)
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
            redact(error),
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
