"""Scenarios 3 and 5: mention → accepted, and the relay worker's memory.

Mention → accepted is timed from just before the comment is saved (the driver's
wall clock) to the run's ``accepted_at`` (set by the relay worker, same machine
clock) when Relay's ``accepted`` arrived. The driver only polls the ledger to know
when to make the next mention of a closed loop; the figure comes from the rows.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import actions
from .direct import accept_per_connection
from .stack import BASELINE_APP_TOKEN, Stack
from .stats import distribution

QUICK_ANSWER = "@load tokens=1 rate=1000"
POLL_S = 0.005


def _accepted(comment_ids: list[int]) -> dict[int, int]:
    """Comment id -> when its run was accepted (wall-clock ns), for accepted runs."""
    return {comment_id: accepted for comment_id, (_sent, accepted) in _times(comment_ids).items()}


def _times(comment_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Comment id -> (sent to Relay, accepted) in wall-clock ns, for accepted runs."""
    from relaybridge.models import AgentRun

    rows = AgentRun.objects.filter(comment_id__in=comment_ids, accepted_at__isnull=False)
    return {
        comment_id: (int(sent_at.timestamp() * 1e9), int(accepted_at.timestamp() * 1e9))
        for comment_id, sent_at, accepted_at in rows.values_list(
            "comment_id", "sent_at", "accepted_at"
        )
        if sent_at is not None and accepted_at is not None
    }


def _claimed(comment_ids: list[int]) -> dict[int, int]:
    """Comment id -> when ``dispatch_run`` claimed its run (wall-clock ns): the end
    of the Celery hop, the start of the dispatch (the first attempt's ``at``)."""
    from django.utils.dateparse import parse_datetime

    from relaybridge.models import AgentRun

    rows = AgentRun.objects.filter(comment_id__in=comment_ids).values_list(
        "comment_id", "attempt_log"
    )
    claimed = {}
    for comment_id, log in rows:
        first = log[0] if log and isinstance(log[0], dict) else {}
        at = parse_datetime(str(first.get("at", "")))
        if at is not None:
            claimed[comment_id] = int(at.timestamp() * 1e9)
    return claimed


def _statuses(comment_ids: list[int]) -> dict[str, int]:
    from django.db.models import Count

    from relaybridge.models import AgentRun

    rows = AgentRun.objects.filter(comment_id__in=comment_ids).values("status")
    return {row["status"]: row["n"] for row in rows.annotate(n=Count("id"))}


async def _wait_accepted(
    pool: ThreadPoolExecutor, comment_ids: list[int], seconds: float
) -> dict[int, int]:
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + seconds
    while True:
        found = await loop.run_in_executor(pool, _accepted, comment_ids)
        if len(found) == len(comment_ids) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.02)


async def steady_mentions(stack: Stack, rate: float, count: int) -> dict[str, Any]:
    """Comments at a steady ``rate`` (open loop); mention → accepted per run."""
    task_ids = await asyncio.to_thread(actions.create_tasks, count, "Mentions")
    loop = asyncio.get_running_loop()
    made: list[tuple[int, int]] = []
    with ThreadPoolExecutor(4) as pool:
        began = time.monotonic()
        pending = []
        for n, task_id in enumerate(task_ids):
            await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))
            pending.append(loop.run_in_executor(pool, actions.mention, task_id, QUICK_ANSWER))
        made = list(await asyncio.gather(*pending))
        accepted = await _wait_accepted(pool, [c for c, _ in made], 60)
        times = await loop.run_in_executor(pool, _times, list(accepted))
        claimed = await loop.run_in_executor(pool, _claimed, list(accepted))
        await loop.run_in_executor(pool, actions.close_connections)
    latencies = [(accepted[c] - t0) / 1e6 for c, t0 in made if c in accepted]
    return {
        "rate": rate,
        "count": count,
        "accepted": len(accepted),
        "latency_ms": distribution(latencies),
        # Where the time goes: saved comment -> event on the wire -> accepted recorded.
        "mention_to_sent_ms": distribution(
            [(times[c][0] - t0) / 1e6 for c, t0 in made if c in times]
        ),
        "sent_to_accepted_ms": distribution([(a - s) / 1e6 for s, a in times.values()]),
        # The first part split: comment saved -> run claimed by dispatch_run (the
        # commit, the broker, Celery's pickup) and claimed -> event on the wire (the
        # dispatch, the intake, the send's ledger write).
        "mention_to_claimed_ms": distribution(
            [(claimed[c] - t0) / 1e6 for c, t0 in made if c in claimed]
        ),
        "claimed_to_sent_ms": distribution(
            [(times[c][0] - claimed[c]) / 1e6 for c in times if c in claimed]
        ),
    }


async def closed_loop_mentions(stack: Stack, concurrency: int, count: int) -> dict[str, Any]:
    """``concurrency`` people each mention, wait for ``accepted``, mention again."""
    task_ids = await asyncio.to_thread(actions.create_tasks, count, "Sustained")
    remaining = iter(task_ids)
    latencies: list[float] = []
    waiting: dict[int, tuple[int, asyncio.Future[int]]] = {}
    loop = asyncio.get_running_loop()

    with ThreadPoolExecutor(concurrency + 1) as pool:

        async def poll() -> None:
            while True:
                if waiting:
                    found = await loop.run_in_executor(pool, _accepted, list(waiting))
                    for comment_id, accepted_ns in found.items():
                        entry = waiting.pop(comment_id, None)
                        if entry is not None and not entry[1].done():
                            entry[1].set_result(accepted_ns)
                await asyncio.sleep(POLL_S)

        async def person() -> None:
            for task_id in remaining:
                comment_id, started = await loop.run_in_executor(
                    pool, actions.mention, task_id, QUICK_ANSWER
                )
                future: asyncio.Future[int] = loop.create_future()
                waiting[comment_id] = (started, future)
                accepted_ns = await asyncio.wait_for(future, 60)
                latencies.append((accepted_ns - started) / 1e6)

        poller = asyncio.create_task(poll())
        began = time.perf_counter()
        try:
            await asyncio.gather(*(person() for _ in range(concurrency)))
        finally:
            elapsed = time.perf_counter() - began
            poller.cancel()
            await asyncio.gather(poller, return_exceptions=True)
            await loop.run_in_executor(pool, actions.close_connections)
    return {
        "concurrency": concurrency,
        "count": count,
        "mentions_per_s": round(count / elapsed, 2),
        "latency_ms": distribution(latencies),
    }


async def mention_to_accepted(
    stack: Stack, *, rate: float, steady_count: int, concurrency: int, loop_count: int
) -> dict[str, Any]:
    """Scenario 3, with the connection-per-event baseline at the same concurrency."""
    steady = await steady_mentions(stack, rate, steady_count)
    sustained = await closed_loop_mentions(stack, concurrency, loop_count)
    base_latencies, base_rate = await accept_per_connection(
        stack.relay_url, BASELINE_APP_TOKEN, concurrency=concurrency, count=loop_count
    )
    return {
        "steady": steady,
        "sustained": sustained,
        "baseline_connection_per_event": {
            "concurrency": concurrency,
            "count": loop_count,
            "events_per_s": round(base_rate, 2),
            "latency_ms": distribution(base_latencies),
        },
    }


# -- memory ------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from ``/proc`` (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no VmRSS for process {pid}")


async def settled_rss(pid: int, seconds: float = 3.0) -> float:
    """The lowest RSS over a few samples: garbage from the last burst has been freed."""
    samples = []
    for _ in range(6):
        samples.append(rss_mb(pid))
        await asyncio.sleep(seconds / 6)
    return min(samples)


async def worker_memory(
    stack: Stack, runs: int, seconds: float, rate: float, batches: int = 2
) -> dict[str, Any]:
    """Scenario 5: RSS with ``runs`` runs streaming at once, and after they end.

    A second batch tells a leak from a high-water mark: memory that is kept but
    reused stays level from one batch to the next, a leak grows again.
    """
    pid = stack.worker.pid
    idle = await settled_rss(pid)
    done = [await _memory_batch(stack, pid, runs, seconds, rate) for _ in range(batches)]
    after = done[-1]["rss_mb_after"]
    return {
        "runs": runs,
        "rss_mb_idle": idle,
        "rss_mb_peak": max(batch["rss_mb_peak"] for batch in done),
        "rss_mb_after": after,
        "after_vs_idle": round(after / idle, 3),
        "batches": done,
    }


async def _memory_batch(
    stack: Stack, pid: int, runs: int, seconds: float, rate: float
) -> dict[str, Any]:
    task_ids = await asyncio.to_thread(actions.create_tasks, runs, "Memory")
    lead = 5.0 + 0.06 * runs
    start_ns = time.time_ns() + int(lead * 1e9)
    tokens = max(1, round(rate * seconds))
    body = f"@load tokens={tokens} rate={rate:g} start={start_ns}"

    def mention_all() -> list[int]:
        ids = [actions.mention(task_id, body)[0] for task_id in task_ids]
        actions.close_connections()
        return ids

    comment_ids = await asyncio.to_thread(mention_all)
    late = max(0.0, (time.time_ns() - start_ns) / 1e9)
    peak = rss_mb(pid)
    streaming_seen = 0
    deadline = time.monotonic() + lead + seconds + 120
    while time.monotonic() < deadline:
        peak = max(peak, rss_mb(pid))
        statuses = await asyncio.to_thread(_statuses, comment_ids)
        streaming_seen = max(streaming_seen, statuses.get("streaming", 0))
        ended = sum(statuses.get(s, 0) for s in ("replied", "failed", "stopped"))
        if ended == runs:
            break
        await asyncio.sleep(0.25)
    final = await asyncio.to_thread(_statuses, comment_ids)
    return {
        "tokens_per_run": tokens,
        "rate": rate,
        "mentions_late_s": round(late, 3),
        "max_streaming_at_once": streaming_seen,
        "final_statuses": final,
        "rss_mb_peak": peak,
        # Over more than one watchdog round (5 s): the first one that finds the worker
        # idle gives memory back (relaybridge/worker/memory.py).
        "rss_mb_after": await settled_rss(pid, seconds=8.0),
    }
