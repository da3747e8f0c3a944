"""Scenario 6: fair use of the one Relay connection.

The benchmark's own plan is unlimited, so nothing ever queues; for this scenario
the relay worker is restarted on Relay's Starter plan (60 events a minute, 10 in
flight), paced as in production. Another person mentions the load agent ``probes``
times, one mention every ``every_s`` seconds (slower than the plan's pace, so their
own mentions never queue behind each other): first with nobody else asking, then
right after the demo user posted a burst of ``burst`` mentions (each a one-second
answer, on a task of its own), while that burst is still queued. The figure is
that person's wait, comment saved → event sent to Relay (the run's ``sent_at``,
same machine clock), in both phases of the same run, and how many of the burst's
runs went out ahead of each of that person's. Under a plan's windows the wait is
mostly the window the burst already spent (see the README's "Fair use"); the
order is what the queue decides.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from . import actions
from .stack import Stack
from .stats import distribution

#: The relay worker's plan for this scenario (bench.settings reads it).
PLAN = "starter"
#: One second per answer: the burst holds the in-flight cap and fills the minute window.
BURST_ANSWER = "@load tokens=20 rate=20"
PROBE = "@load tokens=1 rate=1000"
OTHER_PERSON = "bench-other"
POLL_S = 0.005
#: A probe not sent by then is recorded as waiting this long (and counted as late).
PROBE_TIMEOUT_S = 300.0


def _sent_ns(comment_ids: list[int]) -> dict[int, int]:
    """Comment id -> when its run was sent to Relay (wall-clock ns), for sent runs."""
    from relaybridge.models import AgentRun

    rows = AgentRun.objects.filter(comment_id__in=comment_ids, sent_at__isnull=False)
    return {
        comment_id: int(sent_at.timestamp() * 1e9)
        for comment_id, sent_at in rows.values_list("comment_id", "sent_at")
        if sent_at is not None
    }


def _sent_ahead(probes: list[tuple[int, int]], burst_comments: list[int]) -> list[int]:
    """For each probe (comment id, saved at ns) that was sent: how many of the burst's
    runs were sent after it was saved and before it was sent -- the queue's order,
    whatever the plan's windows made everyone wait."""
    from datetime import UTC, datetime

    from relaybridge.models import AgentRun

    sent = _sent_ns([comment_id for comment_id, _ in probes])
    burst = AgentRun.objects.filter(comment_id__in=burst_comments)

    def at(ns: int) -> datetime:
        return datetime.fromtimestamp(ns / 1e9, tz=UTC)

    return [
        burst.filter(sent_at__gt=at(started), sent_at__lt=at(sent[comment_id])).count()
        for comment_id, started in probes
        if comment_id in sent
    ]


def _unsent(comment_ids: list[int]) -> int:
    from relaybridge.models import AgentRun

    return AgentRun.objects.filter(comment_id__in=comment_ids, sent_at__isnull=True).count()


async def probe_waits(
    count: int, every_s: float, title: str
) -> tuple[list[float], list[tuple[int, int]]]:
    """The other person's mentions, one every ``every_s`` seconds whether or not the
    last was sent: each one's wait until sent (ms; one not sent within
    :data:`PROBE_TIMEOUT_S` is recorded as waiting that long), and the mentions
    made (comment id, saved at ns)."""
    other = await asyncio.to_thread(actions.person, OTHER_PERSON)
    task_ids = await asyncio.to_thread(actions.create_tasks, count, title)
    made: list[tuple[int, int]] = []
    began = time.monotonic()
    for n, task_id in enumerate(task_ids):
        await asyncio.sleep(max(0.0, began + n * every_s - time.monotonic()))
        made.append(await asyncio.to_thread(actions.mention, task_id, PROBE, other))
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    sent: dict[int, int] = {}
    while len(sent) < len(made) and time.monotonic() < deadline:
        sent.update(await asyncio.to_thread(_sent_ns, [c for c, _ in made if c not in sent]))
        await asyncio.sleep(POLL_S)
    waits = [
        (sent[c] - started) / 1e6 if c in sent else PROBE_TIMEOUT_S * 1000 for c, started in made
    ]
    return waits, made


async def fair_use(stack: Stack, *, burst: int, probes: int, every_s: float) -> dict[str, Any]:
    """Both phases on a worker paced to :data:`PLAN`; the caller restarts it so."""
    alone, _ = await probe_waits(probes, every_s, "Fairness probe, alone")
    burst_tasks = await asyncio.to_thread(actions.create_tasks, burst, "Fairness burst")
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(4) as pool:
        made = await asyncio.gather(
            *(loop.run_in_executor(pool, actions.mention, t, BURST_ANSWER) for t in burst_tasks)
        )
        await loop.run_in_executor(pool, actions.close_connections)
    burst_comments = [comment_id for comment_id, _ in made]
    unsent_before = await asyncio.to_thread(_unsent, burst_comments)
    behind, made_behind = await probe_waits(probes, every_s, "Fairness probe, behind a burst")
    unsent_after = await asyncio.to_thread(_unsent, burst_comments)
    ahead = await asyncio.to_thread(_sent_ahead, made_behind, burst_comments)
    await asyncio.to_thread(actions.close_connections)
    return {
        "plan": PLAN,
        "burst": burst,
        "probes": probes,
        "probe_every_s": every_s,
        "wait_to_sent_ms_alone": distribution(alone),
        "wait_to_sent_ms_behind_burst": distribution(behind),
        "probes_late": sum(wait >= PROBE_TIMEOUT_S * 1000 for wait in alone + behind),
        # Round-robin by asker: about one of the burst's runs goes out between a
        # probe's mention and its send, however long the plan's windows held both.
        "burst_sent_ahead_of_each_probe": distribution([float(n) for n in ahead]),
        # The burst must still be queued while the probes run, or the second phase
        # measured nothing: how much of it was left before and after them.
        "burst_unsent_before_probes": unsent_before,
        "burst_unsent_after_probes": unsent_after,
    }
