"""The database thread: every ORM call of the worker, off the event loop.

:func:`in_thread` runs the worker's database calls on one thread of its own, with
its own database connection. More threads do not help the streams: each holds the
interpreter while Django builds its queries, and when a hundred answers end
together, threads saving their replies leave the event loop (and every other run's
tokens) waiting for its turn. With one thread it waits for at most that one; the
writes that come in bursts are batched instead (:class:`BatchedWrites`). SQLite
uses asgiref's one shared thread: its shared in-memory test databases refuse
access from a second thread.

Two library behaviours would otherwise let a cancelled worker loop keep running,
so that shutdown and reconnects hang:

* Python 3.11's ``asyncio.wait_for`` can swallow a ``cancel()`` that arrives just as
  the awaited event is set; :func:`~relaybridge.batching.wait_event` uses
  ``asyncio.timeout`` instead.
* asgiref's ``sync_to_async``, cancelled mid-call, waits for the thread to finish
  and then returns normally; :func:`in_thread` re-raises the cancellation.

The plain functions below are what runs in the thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.utils import timezone

from .. import services, streams
from ..batching import RoundTrips
from ..models import AgentRun
from ..page_memo import page_memo
from ..protocol import ErrorCode

logger = logging.getLogger("relaybridge.worker")

#: A run failed with one of these was cut off by relaybridge while its agent went on.
CUT_OFF_CODES = frozenset({ErrorCode.ANSWER_TOO_LONG, ErrorCode.ANSWER_TOO_SLOW})

P = ParamSpec("P")
R = TypeVar("R")

#: Threads (and so database connections) for the worker's database calls. In the
#: benchmark, with a hundred answers ending together, the last tokens of the other
#: runs waited 40-70 ms (p99) behind the reply writes of 2 threads, 20-45 ms behind
#: those of 1 (see the module docstring).
DATABASE_THREADS = 1
#: A first-token or progress write waits this long for the others that come meanwhile.
#: Where a hundred answers begin together, their first tokens arrive over one token
#: interval; written as they came (a write per few runs, each while the next ones
#: arrived), the database thread kept taking the interpreter from the event loop
#: just when it pushed those first tokens: 16-22 ms added to a first token (p50),
#: against 3-6 ms with no writes at all and 2-3 ms for a token in the middle. One
#: write a quarter of a second later meets the middle of the answers instead, once.
#: An answer that ends sooner hurries the write (its reply is saved after it: the
#: write moves only ``accepted`` runs, and would otherwise lose the time to first token).
WRITES_GATHER_S = 0.25
#: A sweep handles at most this many runs; the next sweep takes the rest.
SWEEP_BATCH = 500

_executors: list[ThreadPoolExecutor | None] = []


def _executor() -> ThreadPoolExecutor | None:
    """The worker's database threads (``None``: asgiref's one shared thread)."""
    if not _executors:
        from django.db import connection

        if connection.vendor == "sqlite":
            _executors.append(None)
        else:
            pool = ThreadPoolExecutor(DATABASE_THREADS, thread_name_prefix="relaybridge-db")
            _executors.append(pool)
    return _executors[0]


def as_one_trip(func: Callable[P, R]) -> Callable[P, R]:
    """``func`` as one trip to the thread runs it (what :func:`in_thread` runs there).

    Within one trip, values that cannot change meanwhile (the agent directory, from
    the cache) are read once however often the call needs them
    (:mod:`relaybridge.page_memo`): the thread is the worker's narrowest path.
    """

    def memoized(*args: P.args, **kwargs: P.kwargs) -> R:
        with page_memo({}):
            return func(*args, **kwargs)

    return memoized


def in_thread(func: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """``sync_to_async`` of :func:`as_one_trip` that honours a cancellation requested
    during the call."""
    memoized = as_one_trip(func)

    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        executor = _executor()
        if executor is None:
            call = sync_to_async(memoized)
        else:
            call = sync_to_async(memoized, thread_sensitive=False, executor=executor)
        result = await call(*args, **kwargs)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError
        return result

    return run


# --- what the worker knows about a run it carries ------------------------------------


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What a run's stream needs to know about it, read once."""

    run_id: str
    agent_id: str
    thread_id: str
    group: str
    agent_name: str
    attempts: int
    last_error_code: str
    streaming: bool
    #: Stopped from a page (Relay has no cancel): the agent may go on; we drop its tokens.
    stopped: bool


def run_facts(run: AgentRun) -> RunFacts:
    from ..adapters import get_adapter

    return RunFacts(
        run_id=str(run.run_id),
        agent_id=run.agent_id,
        thread_id=run.thread_id,
        group=streams.group_name_for_thread(run.thread_key),
        agent_name=get_adapter().agent_display_name(run.agent_id),
        attempts=run.attempts,
        last_error_code=run.error_code,
        streaming=run.status == AgentRun.Status.STREAMING,
        # Its tokens are no longer shown: a first token would otherwise go out
        # before the write that finds the run stopped. An answer cut off at a bound
        # (too long, too slow) is stopped alike: the agent may go on, unheard.
        stopped=run.status == AgentRun.Status.STOPPED
        or (run.status == AgentRun.Status.FAILED and run.error_code in CUT_OFF_CODES),
    )


def run_with_facts(run_id: str) -> tuple[AgentRun, RunFacts] | None:
    """The run and its stream's facts, in one trip to the database thread."""
    run = services.get_run(run_id)
    return None if run is None else (run, run_facts(run))


def facts_of(run_id: str) -> RunFacts | None:
    run = services.get_run(run_id)
    return None if run is None else run_facts(run)


def accepted_status(run_id: str, event_id: str, seq: int) -> streams.RunStatusMessage | None:
    """Record ``accepted`` and build the page's status event, in one trip to the thread.

    ``None``: the run had moved on. The text so far is empty: no token has come yet.
    """
    return fresh_status(run_id, seq) if services.mark_accepted(run_id, event_id) else None


def saved_reply(run_id: str, text: str, metadata: dict[str, Any]) -> streams.RunReplyMessage | None:
    """Save the reply and render it for the page, in one trip to the thread.

    The ``run.reply`` message, or ``None`` when the run's reply was saved before.
    It is made from the comment and the run as saved (tokens blanked, see
    record_reply), without reading either again.
    """
    saved = services.record_reply_and_run(run_id, text, metadata)
    if saved is None:
        return None
    run, comment = saved
    return streams.reply_event_for(run, comment)


def fresh_status(run_id: str, seq: int) -> streams.RunStatusMessage | None:
    run = services.get_run(run_id)
    return None if run is None else streams.status_event(run, "", seq)


def status_now(run_id: str, text: str, seq: int) -> streams.RunStatusMessage | None:
    run = services.get_run(run_id)
    return None if run is None else streams.status_event(run, text, seq)


# --- the sweep, the watchdog and the send loop ---------------------------------------


def mark_sent(refs: list[str], windowed: bool = True) -> int:
    """Record that these runs go to Relay now; how many were still ``sending``."""
    return services.mark_sent_many(refs, windowed=windowed)


def recent_send_times(within_s: float) -> list[float]:
    """When events went to Relay in the last ``within_s`` seconds (epoch seconds)."""
    return [at.timestamp() for at in services.recent_send_times(within_s)]


def run_for_event(event_id: str) -> AgentRun | None:
    active = (AgentRun.Status.ACCEPTED, AgentRun.Status.STREAMING)
    return AgentRun.objects.filter(event_id=event_id, status__in=active).first()


def answering_runs() -> list[tuple[str, str]]:
    """(run id, event id) of the runs the ledger has accepted or streaming."""
    active = (AgentRun.Status.ACCEPTED, AgentRun.Status.STREAMING)
    rows = (
        AgentRun.objects.filter(status__in=active, event_id__isnull=False)
        .order_by("queued_at", "id")
        .values_list("run_id", "event_id")
    )
    return [(str(run_id), str(event_id)) for run_id, event_id in rows[:SWEEP_BATCH]]


def sending_run_ids() -> list[str]:
    """Runs claimed and ready to go to Relay, oldest first.

    Oldest first, not the model's newest-first ordering: the connection sends one
    thread's runs in the order they are submitted, so a sweep that finds several
    mentions of one thread (its hand-offs lost, or a worker starting on a backlog)
    must submit them in the order they were posted, and a backlog longer than
    :data:`SWEEP_BATCH` must not keep its oldest runs waiting behind newer ones.
    """
    runs = (
        AgentRun.objects.filter(status=AgentRun.Status.SENDING)
        .exclude(payload={})
        .order_by("queued_at", "id")
    )
    return [str(run_id) for run_id in runs.values_list("run_id", flat=True)[:SWEEP_BATCH]]


def overdue_run_ids(after: float) -> list[str]:
    """What a lost or killed ``dispatch_run`` left behind, to be dispatched again.

    Queued and overdue retrying runs, and runs a task claimed but died on
    (released back to ``queued`` first). The worker claims them itself
    (:func:`~relaybridge.services.prepare_dispatch`); the claim is conditional, so
    a task that turns up late, or twice, does nothing.
    """
    abandoned = services.abandoned_claims(after).values_list("run_id", flat=True)[:SWEEP_BATCH]
    released = [r for r in abandoned if services.release_abandoned_claim(r, after)]
    overdue = services.runs_to_redispatch(after).values_list("run_id", flat=True)[:SWEEP_BATCH]
    return [str(run_id) for run_id in [*released, *overdue]]


def ended_run_ids(run_ids: list[str], older_than: float) -> list[str]:
    """Of ``run_ids``, those that ended (stopped, failed, replied) ``older_than`` ago or more."""
    ended = (AgentRun.Status.STOPPED, AgentRun.Status.FAILED, AgentRun.Status.REPLIED)
    cutoff = timezone.now() - timedelta(seconds=older_than)
    runs = AgentRun.objects.filter(run_id__in=run_ids, status__in=ended, updated_at__lt=cutoff)
    return [str(run_id) for run_id in runs.values_list("run_id", flat=True)]


def overlong_run_ids(older_than: float) -> list[str]:
    runs = services.overlong_runs(older_than)
    return [str(run_id) for run_id in runs.values_list("run_id", flat=True)[:SWEEP_BATCH]]


def stalled_run_ids(older_than: float) -> list[str]:
    runs = services.stalled_runs(older_than)
    return [str(run_id) for run_id in runs.values_list("run_id", flat=True)[:SWEEP_BATCH]]


# --- first tokens and progress, written in batches -----------------------------------


class BatchedWrites:
    """Writes of one kind for many runs, made together, beside the streams.

    No page waits for these writes: the text goes out at once. But where a hundred
    answers begin (or make progress) in the same instant, a hundred separate writes
    would hold the worker's interpreter long enough to delay every stream by a tenth
    of a second, so the runs that arrive while one write is under way are written
    together by the next (a query or two, however many runs: :class:`RoundTrips`).

    ``write`` takes each run and when it arrived, and returns the runs it changed.
    """

    def __init__(
        self, write: Callable[[dict[Any, datetime]], set[Any]], what: str, *, gather: float = 0.0
    ) -> None:
        self._write = write
        self._what = what
        self._round_trips: RoundTrips[tuple[str, datetime], bool | None] = RoundTrips(
            self._write_all, gather=gather
        )

    async def add(self, run_id: str) -> bool | None:
        """Write the run (as of now) with the next batch: whether the write changed it
        (False: it had ended, or was past the change already; None: the write failed)."""
        return await self._round_trips((run_id, timezone.now()))

    def hurry(self) -> None:
        """Write what waits now, without gathering more (a run ends, and waits for it)."""
        self._round_trips.hurry()

    async def _write_all(self, batch: list[tuple[str, datetime]]) -> list[bool | Exception | None]:
        arrivals: dict[Any, datetime] = dict(batch)
        try:
            changed = set(await in_thread(self._write)(arrivals))
        except Exception:
            # The next progress write records the run later; the watchdog, which
            # would otherwise fail it, reads that.
            logger.exception("could not record the %s of %d run(s)", self._what, len(arrivals))
            return [None] * len(batch)
        return [run_id in changed for run_id, _at in batch]


def first_token_writes() -> BatchedWrites:
    """A run's first token moves it from ``accepted`` to ``streaming`` and records our
    time to first token (as of its arrival: the write comes :data:`WRITES_GATHER_S` later)."""
    return BatchedWrites(services.record_first_tokens, "first token", gather=WRITES_GATHER_S)


def progress_writes() -> BatchedWrites:
    """A streaming run's progress, so that the watchdog leaves it be. Runs that
    started together make progress together."""
    return BatchedWrites(services.touch_runs, "progress", gather=WRITES_GATHER_S)
