"""One run's stream: the object that owns everything the worker does for one run.

Whatever Relay says about a run -- ``accepted``, its tokens, the terminal ``reply``
or error -- is queued on that run's :class:`RunStream`, which works through its
queue in order, in a task of its own that ends when the queue is empty and starts
again with the next frame. The stream owns:

* the coalescing: the first token is pushed at once, later ones at most once per
  flush interval -- the stream's *flush deadline*, which its task waits for;
* every push of its text: buffer first (the text so far in Redis), then the page's
  group. Only the stream's task pushes, so ``seq`` order holds by construction;
* the first-token write (batched with other runs' in the database thread) and
  the progress writes that keep the watchdog away while it streams;
* the end: the reply saved or the error recorded, pushed, and the buffer cleared;
* the bound on the answer's length: past ``RELAYBRIDGE_MAX_ANSWER_CHARS`` the text
  up to it is kept, the run fails (``RELAYBRIDGE_ANSWER_TOO_LONG``) and whatever the
  agent sends for it afterwards is dropped, as for a stopped run.

A delta arrives for a run in :meth:`RunStream.add_token`; it is taken up, in order,
by :meth:`RunStream._take_tokens`. A stream that falls behind joins the tokens
waiting in its queue into one update; that is no deliberate delay, it only keeps a
busy worker from answering a burst with a burst.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .. import agents, services, streams
from ..batching import wait_event
from ..buffers import StreamGap
from ..conf import app_token, loggable
from ..models import AgentRun
from ..protocol import (
    ErrorCode,
    Reply,
    RetryDecision,
    decide_retry,
    describe_decision,
    describe_error,
)
from ..protocol.redaction import StreamRedactor
from .database import (
    RunFacts,
    accepted_status,
    in_thread,
    run_facts,
    saved_reply,
    status_now,
)

if TYPE_CHECKING:
    from .run_streams import RunStreams

logger = logging.getLogger("relaybridge.worker")

Job = Callable[[], Awaitable[object]]


class RunStream:
    """One run's stream: its queue and task, flush deadline, pushes and end."""

    def __init__(self, run_id: str, owner: RunStreams) -> None:
        self.run_id = run_id
        self._owner = owner
        self._jobs: deque[Job | str] = deque()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: When the run's last token arrived (the event loop's clock). The watchdog
        #: asks this first: the progress writes it would otherwise go by land later,
        #: gathered and behind the worker's other queries.
        self.heard_at = -math.inf
        #: True while the task waits for the flush deadline with text pending.
        self._awaiting_deadline = False
        self._reset()

    def _reset(self) -> None:
        """Forget the run (it ended): a next attempt starts a stream afresh."""
        self.facts: RunFacts | None = None
        #: Pushes made so far; the page and the buffer drop a ``seq`` they have seen.
        self.seq = 0
        self._last_push: float | None = None
        self._pending: list[str] = []
        self._streaming = False
        self._last_touch = 0.0
        self.stopped = False
        self._first_write: asyncio.Task[None] | None = None
        #: The run's text as pushed so far, to put back in a buffer that lost it.
        self._streamed: list[str] = []
        #: Characters of the answer taken so far (pushed or pending).
        self._length = 0
        #: Blanks tokens before any text goes out, holding back a fragment that may
        #: start one until the next delta (or the end) shows what it is.
        self._redactor = StreamRedactor(app_token())

    # --- what arrives, queued in order --------------------------------------------

    def add_token(self, text: str) -> None:
        """A delta of the run's answer arrived from Relay."""
        self.heard_at = self._owner.token_arrived()
        text = self._redactor.feed(text)
        if not text:
            return
        fits = self._length + len(text) <= self._owner.max_answer_chars
        if self._awaiting_deadline and not self._jobs and fits:
            # It joins the text already waiting for the flush deadline: no need to
            # wake the task for it (with a fast agent, most tokens take this way).
            self._pending.append(text)
            self._length += len(text)
            return
        self._queue(text)

    def call(self, job: Job) -> None:
        """Run ``job`` after everything queued so far."""
        self._queue(job)

    def _queue(self, item: Job | str) -> None:
        self._jobs.append(item)
        if self._task is None:
            self._task = self._owner.track(self._work(), f"relay-run-{self.run_id}")
        else:
            self._arrived.set()

    @property
    def busy(self) -> bool:
        """Whether the stream's task is at work (or waiting for its flush deadline)."""
        return self._task is not None

    async def open(self, run: AgentRun, facts: RunFacts | None = None) -> None:
        """Read what the stream needs to know about ``run`` (unless given ``facts``)."""
        if facts is None:
            facts = await in_thread(run_facts)(run)
        self.facts, self._streaming, self.stopped = facts, facts.streaming, facts.stopped
        if run.status in (AgentRun.Status.ACCEPTED, AgentRun.Status.STREAMING):
            # Streamed by an earlier connection or worker: continue its numbering, or
            # the buffer and the pages would drop the new text as already seen.
            text, seq = await self._owner.snapshot(self.run_id)
            self.seq = max(self.seq, seq)
            if not self._streamed:
                self._streamed.append(text)
                self._length = len(text)

    async def _known(self) -> RunFacts | None:
        if self.facts is None:
            run = await in_thread(services.get_run)(self.run_id)
            if run is not None:
                await self.open(run)
        return self.facts

    # --- the stream's task -----------------------------------------------------------

    async def _work(self) -> None:
        clock = self._owner.clock
        try:
            while True:
                self._arrived.clear()
                if self._jobs:
                    await self._handle(self._jobs.popleft())
                    continue
                due = self._flush_deadline()
                if due is None:
                    return
                wait = due - clock()
                if wait > 0:
                    # Until the deadline, or until something other than text arrives.
                    self._awaiting_deadline = True
                    try:
                        if await wait_event(self._arrived, wait):
                            continue
                    finally:
                        self._awaiting_deadline = False
                await self._guarded(self._push_pending)
        finally:
            # No await between the last look at the queue and here: a frame queued
            # meanwhile would have kept the loop going.
            self._task = None
            self._owner.idle(self)

    async def _handle(self, item: Job | str) -> None:
        if isinstance(item, str):
            texts = [item]
            while self._jobs and isinstance(self._jobs[0], str):
                texts.append(str(self._jobs.popleft()))
            await self._guarded(functools.partial(self._take_tokens, "".join(texts)))
        else:
            await self._guarded(item)

    async def _guarded(self, job: Job) -> None:
        try:
            await job()
        except Exception:
            # Logged, not raised: one run's trouble must not stop the others.
            # A run left without its update is ended by the watchdog.
            logger.exception("relay worker: handling a frame of run %s failed", self.run_id)

    def _flush_deadline(self) -> float | None:
        if not self._pending or self._last_push is None or self.stopped:
            return None
        return self._last_push + self._owner.flush_interval

    # --- tokens --------------------------------------------------------------------

    async def _take_tokens(self, text: str) -> None:
        facts = await self._known()
        if facts is None or self.stopped:
            return
        owner = self._owner
        room = owner.max_answer_chars - self._length
        if len(text) > room:
            self._pending.append(text[: max(0, room)])
            self._length = owner.max_answer_chars
            await self._too_long(len(text) - room)
            return
        self._length += len(text)
        now = owner.clock()
        if not self._streaming:
            self._streaming, self._last_touch = True, now
            # The first text goes out at once; the write that marks the run
            # streaming follows, with those of other runs.
            self._first_write = owner.beside(self._write_first_token(facts))
        elif now - self._last_touch >= owner.touch_every:
            self._last_touch = now
            # Beside the stream, not in its way: runs that started together would all
            # pause for this write at the same instant.
            owner.beside(self._touch(facts))
        self._pending.append(text)
        if self._last_push is None or now - self._last_push >= owner.flush_interval:
            await self._push_pending(now)

    async def _push_pending(self, now: float | None = None) -> None:
        facts = self.facts
        if self.stopped:
            self._pending.clear()
        if not self._pending or facts is None:
            return
        self._last_push = self._owner.clock() if now is None else now
        text = "".join(self._pending)
        self._pending.clear()
        # A long delta (a burst joined while the stream was behind, one huge token)
        # goes out as several, each well within a page's websocket frame.
        for piece in streams.split_text(text):
            await self._push_piece(facts, piece)

    async def _push_piece(self, facts: RunFacts, text: str) -> None:
        self.seq += 1
        seq = self.seq
        self._streamed.append(text)
        # Buffer first, then push: a page that reads the snapshot after this point
        # has the text; one that got the push dedupes by ``seq``.
        try:
            await self._owner.append(self.run_id, seq, text)
        except StreamGap:
            # The buffer lost the run's earlier text (Redis restarted empty or was
            # flushed, an append failed): put all of it back, or a page that connects
            # now is shown only what came after, in place of what it had.
            await self._owner.buffer("replace", self.run_id, "".join(self._streamed), seq)
        await self._owner.push(facts.group, streams.delta_event(self.run_id, seq, text))

    async def _write_first_token(self, facts: RunFacts) -> None:
        if await self._owner.first_tokens.add(self.run_id) is False:
            # Not moved to streaming: stopped meanwhile, or streaming under an
            # earlier worker; the progress write tells which.
            await self._touch(facts)

    async def _touch(self, facts: RunFacts) -> None:
        # A touch succeeds only for accepted or streaming runs, so a failed touch
        # means the run was stopped (or otherwise ended) meanwhile. None: the write
        # failed (logged); the next one may succeed.
        if await self._owner.progress.add(self.run_id) is not False:
            return
        if self.facts is facts:
            self.stopped = True
            self._pending.clear()

    async def _end_of_text(self) -> None:
        """Push what is pending; the run's end must not overtake its first-token write."""
        held = self._redactor.flush()
        if held:
            self._pending.append(held)
        await self._push_pending()
        if self._first_write is not None:
            if not self._first_write.done():
                # An answer shorter than the first-token writes' gathering: its
                # end does not wait out the rest of the quarter second.
                self._owner.first_tokens.hurry()
            await asyncio.wait([self._first_write])

    # --- what Relay said -------------------------------------------------------------

    async def accepted(self, event_id: str) -> None:
        event = await in_thread(accepted_status)(self.run_id, event_id, self.seq)
        if event is None:
            logger.warning(
                "run %s: accepted as %s but the run had moved on",
                self.run_id,
                loggable(event_id),
            )
        elif event and self.facts is not None:
            await self._owner.push(self.facts.group, event)

    async def _too_long(self, dropped: int, text: str | None = None) -> None:
        """The answer passed the cap: fail the run, keeping its text up to the cap.

        The run stays in flight on the connection: Relay has no cancel, so its thread
        slot is given back as for a stopped run (the watchdog), and the frames that
        still come for it are dropped (:func:`.database.run_facts`).
        """
        cap = self._owner.max_answer_chars
        logger.warning(
            "run %s: the answer passed %d characters (%d more arrived); cut off",
            self.run_id,
            cap,
            dropped,
        )
        message = f"the answer passed RELAYBRIDGE_MAX_ANSWER_CHARS ({cap})"
        await self.failed(ErrorCode.ANSWER_TOO_LONG, message, retry=False, text=text)

    async def reply(self, reply: Reply) -> None:
        facts = await self._known()
        if facts is None:
            return
        if facts.stopped:
            logger.info("run %s: ended before its reply came; the reply is dropped", self.run_id)
            await self._owner.buffer("clear", self.run_id)
            self._reset()
            return
        cap = self._owner.max_answer_chars
        if len(reply.reply) > cap:
            await self._too_long(len(reply.reply) - cap, reply.reply[:cap])
            return
        await self._end_of_text()
        # The text is on the pages; saving it as a comment waits for a pause in
        # the other runs' tokens (it would hold the interpreter from them).
        await self._owner.lull()
        metadata = {
            "tokens_used": reply.metadata.tokens_used,
            "model": reply.metadata.model,
            "latency_ms": reply.metadata.latency_ms,
        }
        saved = await in_thread(saved_reply)(self.run_id, reply.reply, metadata)
        if saved is None:
            logger.info("run %s: reply already saved; this one is ignored", self.run_id)
        else:
            await self._owner.push(facts.group, saved)
        await self._owner.buffer("clear", self.run_id)
        self._reset()

    async def failed(
        self, code: str, error: str, *, retry: bool = True, text: str | None = None
    ) -> RetryDecision | None:
        """The run's attempt failed: retry per the error-code policy, or fail visibly.

        ``text``: the run's text to keep, in place of the text streamed so far.
        Returns the policy's decision, or None for a run that does not exist.
        """
        facts = await self._known()
        if facts is None:
            return None
        await self._end_of_text()
        # Retries are counted per code: consecutive attempts that failed the same way.
        retries_so_far = facts.attempts - 1 if facts.last_error_code == code else 0
        lost = code == ErrorCode.CONNECTION_LOST
        limit = self._owner.resend_lost if lost else None
        decision = decide_retry(code, retries_so_far, max_retries=limit)
        retry_in = decision.delay_s if retry and decision.retry else None
        if retry_in is not None:
            message = describe_decision(decision, agent=facts.agent_name)
        else:
            message = describe_error(code, agent=facts.agent_name)
        logger.log(
            logging.ERROR if decision.policy.loud else logging.INFO,
            "run %s (%s): %s [%s]; Relay said: %s",
            self.run_id,
            facts.agent_id,
            loggable(message),
            loggable(code),
            loggable(error, limit=2000),
        )
        owner = self._owner
        partial, seq = await owner.snapshot(self.run_id)
        streamed = "".join(self._streamed)
        if len(streamed) > len(partial):  # the buffer lost text that pages were shown
            partial = streamed
        if text is not None and len(text) > len(partial):
            partial = text
        # An answer lost with its connection is claimed and sent again by the worker
        # itself, at once (see .intake.RunIntake.lost); other retries go through Celery.
        changed = await in_thread(services.record_error)(
            self.run_id, code, message, retry_in, partial_text=partial or None, schedule=not lost
        )
        if decision.policy.mark_agent_unavailable:
            await in_thread(agents.mark_unavailable)(facts.agent_id)
        if changed:
            await owner.push(facts.group, streams.error_event(self.run_id, code, message, retry_in))
            status = await in_thread(status_now)(self.run_id, partial, seq)
            if status is not None:
                await owner.push(facts.group, status)
        await owner.buffer("clear", self.run_id)
        self._reset()
        return decision

    async def forget(self) -> None:
        self._reset()
