"""The run streams: the worker's :class:`~.run_stream.RunStream` per run, and what they share.

:meth:`RunStreams.on_outcome` is where every outcome of a Relay frame about a run
is queued on that run's stream. Across runs nothing waits for anything: one run's
database call never delays another's tokens. The streams share the channel layer
and the text-so-far buffer (each behind a bound on calls in flight), the batched
first-token writes, and the record of which thread waits for a run to settle.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from channels.layers import BaseChannelLayer

from .. import streams
from ..buffers import StreamGap
from ..conf import DEFAULTS, loggable
from ..models import AgentRun
from ..protocol import Error, Reply, RetryDecision, Token
from ..protocol.outcomes import (
    EventFailed,
    Outcome,
    ReplyReceived,
    SubmissionAccepted,
    SubmissionRejected,
    TokenReceived,
    UnknownEvent,
)
from .database import (
    RunFacts,
    first_token_writes,
    in_thread,
    progress_writes,
    run_for_event,
)
from .group_pushes import GroupPushes
from .run_stream import Job, RunStream

logger = logging.getLogger("relaybridge.worker")

#: How often a streaming run's ``updated_at`` is refreshed, so the watchdog sees progress.
TOUCH_EVERY_S = 5.0
#: Channel-layer calls, and buffer calls, in flight at once (each). Runs push
#: concurrently; unbounded, a few hundred runs would exhaust a Redis connection pool.
MAX_CONCURRENT_PUSHES = 32
#: A reply is saved once no token has arrived, on any run, for this long...
END_WRITE_LULL_S = 0.02
#: ... or once it has waited this long. Saving a reply (the comment through the
#: host's model, its rendering for the page) is a few milliseconds of Python on the
#: database thread, which shares the interpreter with the event loop: answers that
#: end together would otherwise slow the last tokens of the others by that much
#: each. The answer's text is already on the page; only its final form waits.
END_WRITE_MAX_WAIT_S = 0.25


class RunStreams:
    """The streams of the runs the worker carries, and what they share."""

    def __init__(
        self,
        layer: BaseChannelLayer,
        buffer: streams.StreamBuffer,
        *,
        flush_interval: float,
        stall_timeout: float,
        max_answer_chars: int = DEFAULTS["MAX_ANSWER_CHARS"],
        resend_lost: int = DEFAULTS["RESEND_LOST"],
        clock: Callable[[], float] = time.monotonic,
        end_write_lull: float = END_WRITE_LULL_S,
        end_write_max_wait: float = END_WRITE_MAX_WAIT_S,
    ) -> None:
        if flush_interval < 0:
            raise ValueError("the flush interval cannot be negative")
        self.layer = layer
        self._pushes = GroupPushes(layer)
        self._buffer = buffer
        self.flush_interval = flush_interval
        #: A run's answer is cut off, and the run failed, past this many characters.
        self.max_answer_chars = max_answer_chars
        #: How often an answer lost with its connection is asked again.
        self.resend_lost = resend_lost
        # Well within the stall timeout: a run that streams must never look stalled
        # to the watchdog between two touches, however short the timeout is set.
        self.touch_every = min(TOUCH_EVERY_S, stall_timeout / 4)
        self.clock = clock
        self.first_tokens = first_token_writes()
        self.progress = progress_writes()
        self._streams: dict[str, RunStream] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        #: (agent, thread) -> set once the run that ended there has recorded its end:
        #: the thread's next event waits for it, so runs of one thread stay in order.
        self._settling: dict[tuple[str, str], tuple[str, asyncio.Event]] = {}
        self._layer_slots = asyncio.Semaphore(MAX_CONCURRENT_PUSHES)
        self._redis_slots = asyncio.Semaphore(MAX_CONCURRENT_PUSHES)
        #: When the last token of any run arrived (the event loop's clock).
        self._last_token_at = float("-inf")
        self._end_write_lull = end_write_lull
        self._end_write_max_wait = end_write_max_wait

    def __len__(self) -> int:
        """Runs the worker remembers (known to it, not ended)."""
        return sum(1 for stream in self._streams.values() if stream.facts is not None)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._streams

    def stream(self, run_id: str) -> RunStream:
        stream = self._streams.get(run_id)
        if stream is None:
            stream = self._streams[run_id] = RunStream(run_id, self)
        return stream

    async def open(self, run: AgentRun, facts: RunFacts | None = None) -> RunStream:
        """The run is about to be sent, or was found streaming: know it."""
        stream = self.stream(str(run.run_id))
        await stream.open(run, facts)
        return stream

    def on_outcome(self, outcome: Outcome) -> bool:
        """Queue what a Relay frame means for a run; False if it concerns no run."""
        match outcome:
            case SubmissionAccepted(ref=ref, event_id=event_id):
                stream = self.stream(ref)
                stream.call(functools.partial(stream.accepted, event_id))
            case TokenReceived(ref=ref, text=text):
                self.stream(ref).add_token(text)
            case ReplyReceived(ref=ref, reply=reply):
                _check_echo(ref, reply)
                stream = self.stream(ref)
                stream.call(functools.partial(stream.reply, reply))
                self._settle(stream)
            case (
                SubmissionRejected(ref=ref, code=code, error=error)
                | EventFailed(ref=ref, code=code, error=error)
            ):
                stream = self.stream(ref)
                stream.call(functools.partial(stream.failed, code, error))
                self._settle(stream)
            case UnknownEvent(frame=frame):
                self.for_event(frame.event_id, functools.partial(self._adopt, frame))
            case _:
                return False
        return True

    def for_event(self, event_id: str | None, job: Job) -> None:
        """Run ``job`` in order with the other frames of an event no run here knows yet."""
        self.stream(f"event:{event_id}").call(job)

    async def fail(
        self, run_id: str, code: str, error: str, *, retry: bool = True
    ) -> RetryDecision | None:
        """Fail the run, after what its stream has queued; wait until it is recorded."""
        stream = self.stream(run_id)
        decided: asyncio.Future[RetryDecision | None] = asyncio.get_running_loop().create_future()

        async def fail() -> None:
            try:
                decided.set_result(await stream.failed(code, error, retry=retry))
            finally:
                if not decided.done():
                    decided.set_result(None)

        stream.call(fail)
        return await decided

    def forget(self, run_id: str) -> None:
        """Drop what the worker remembers of a run that ended elsewhere (stopped)."""
        stream = self._streams.get(run_id)
        if stream is not None:
            stream.call(stream.forget)

    async def settled(self, pair: tuple[str, str]) -> None:
        """Wait until the run that last ended on (agent, thread) has recorded its end."""
        entry = self._settling.get(pair)
        if entry is not None:
            await entry[1].wait()

    def _settle(self, stream: RunStream) -> None:
        facts = stream.facts
        if facts is None:
            return
        pair, done = (facts.agent_id, facts.thread_id), asyncio.Event()
        self._settling[pair] = (stream.run_id, done)

        async def settled() -> None:
            done.set()
            if self._settling.get(pair, (None, None))[1] is done:
                del self._settling[pair]

        stream.call(settled)

    async def _adopt(self, frame: Any) -> None:
        """A frame for an event this connection did not send (an earlier worker did)."""
        event_id = frame.event_id
        run = await in_thread(run_for_event)(event_id) if event_id else None
        if run is None:
            logger.info("ignoring a frame for unknown event %s", loggable(event_id))
            return
        stream = self.stream(str(run.run_id))
        if stream.facts is None:
            await stream.open(run)
        if isinstance(frame, Token):
            stream.add_token(frame.token)
        elif isinstance(frame, Reply):
            stream.call(functools.partial(stream.reply, frame))
        elif isinstance(frame, Error):
            stream.call(functools.partial(stream.failed, frame.normalized_code, frame.error))

    # --- what the streams share ----------------------------------------------------

    def track(self, work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def beside(self, write: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A write made beside the streams (progress, first tokens), never in their way."""
        return self.track(write, "relay-write")

    def token_arrived(self) -> float:
        """A token of some run arrived: the pause :meth:`lull` waits for starts again.
        Returns the time (the event loop's clock)."""
        self._last_token_at = now = asyncio.get_running_loop().time()
        return now

    def heard_within(self, run_id: str, seconds: float) -> bool:
        """Whether a token of the run arrived within the last ``seconds``."""
        stream = self._streams.get(run_id)
        if stream is None:
            return False
        return asyncio.get_running_loop().time() - stream.heard_at < seconds

    async def lull(self) -> None:
        """Wait for a pause in every run's tokens (:data:`END_WRITE_LULL_S`), or give up.

        On the event loop's clock, not :attr:`clock`, which tests hold still.
        """
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self._end_write_max_wait
        while (now := loop.time()) < give_up:
            quiet_at = self._last_token_at + self._end_write_lull
            if now >= quiet_at:
                return
            await asyncio.sleep(min(quiet_at, give_up) - now)

    def idle(self, stream: RunStream) -> None:
        if stream.facts is None and not stream.busy and self._streams.get(stream.run_id) is stream:
            del self._streams[stream.run_id]

    async def push(self, group: str, event: streams.BrowserMessage) -> None:
        try:
            async with self._layer_slots:
                await self._pushes.group_send(group, streams.group_message(event))
        except Exception:
            # A page that misses a push catches up from the snapshot on reconnect;
            # a channel-layer hiccup must never take the relay connection down.
            logger.exception("could not push %s to %s", event.get("type"), group)

    # The text-so-far buffer: trouble there costs a snapshot, never the connection.

    async def snapshot(self, run_id: str) -> tuple[str, int]:
        try:
            async with self._redis_slots:
                return await self._buffer.snapshot(run_id)
        except Exception:
            logger.exception("could not read the stream buffer of run %s", run_id)
            return "", 0

    async def append(self, run_id: str, seq: int, text: str) -> None:
        """Append to the run's text so far; :class:`StreamGap` when the buffer lost it."""
        try:
            async with self._redis_slots:
                await self._buffer.append(run_id, seq, text)
        except StreamGap:
            raise
        except Exception:
            logger.exception("could not append the stream buffer of run %s", run_id)

    async def buffer(self, action: str, run_id: str, *args: Any) -> None:
        try:
            async with self._redis_slots:
                await getattr(self._buffer, action)(run_id, *args)
        except Exception:
            logger.exception("could not %s the stream buffer of run %s", action, run_id)

    async def wait_idle(self, seconds: float) -> bool:
        """Wait until every stream's work is done (or ``seconds`` pass); True if it is."""
        try:
            async with asyncio.timeout(seconds):
                while self._tasks:
                    await asyncio.wait(set(self._tasks))
        except TimeoutError:
            return False
        return True


def _check_echo(ref: str, reply: Reply) -> None:
    """``reply.payload`` echoes our run id: an end-to-end check of correlation."""
    echoed = reply.payload.get("relaybridge_run") if reply.payload else None
    if echoed is not None and echoed != ref:
        logger.error("reply for run %s echoes run %s: correlation is off", ref, loggable(echoed))
