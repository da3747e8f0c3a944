"""Scenarios 1, 2 and 4: added latency, the throughput ceiling, bytes to the browser.

One *phase* is K runs x T tokens at R tokens/s each, all starting at the same
wall-clock instant (the load agent's ``start``), watched by S subscribers per task
that were connected, and had their snapshot, before the mention was made. The
baseline phase is the same load read by one plain app connection to the emulator.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from dataclasses import dataclass
from typing import Any

from . import actions
from .clients import Login, Subscriber, TokenLog, subscriber_tokens
from .direct import stream_direct
from .stack import BASELINE_APP_TOKEN, Stack
from .stats import distribution, median

#: Where in an answer a token is: its first, one in between, its last.
POSITIONS = ("first", "middle", "last")
#: Opening this many sockets at once keeps Daphne's accept queue reasonable.
OPEN_AT_ONCE = 25


@dataclass
class Load:
    runs: int
    tokens: int
    rate: float

    @property
    def aggregate(self) -> float:
        return self.runs * self.rate

    def lead_s(self) -> float:
        """Time from the first mention to the common start: every run must be accepted
        by then, or the answers would start while the others are still being accepted
        (``accepted_lead_s_min`` in the results says whether they were)."""
        return 2.0 + 0.05 * self.runs

    def duration_s(self) -> float:
        return self.tokens / self.rate

    def start_of(self, n: int, start_ns: int) -> int:
        """When run ``n`` starts: the runs are spread over one token interval, so the
        aggregate rate is steady instead of every run sending in the same instant."""
        return start_ns + int(n / self.runs / self.rate * 1e9)


def summarize(log: TokenLog, expected: int, tokens_per_answer: int) -> dict[str, Any]:
    last = tokens_per_answer - 1
    by_position: dict[str, list[float]] = {position: [] for position in POSITIONS}
    for delay, index in zip(log.delays_ms, log.indexes, strict=True):
        position = "first" if index == 0 else "last" if index == last else "middle"
        by_position[position].append(delay)
    return {
        "delay_ms": distribution(log.delays_ms),
        # Where in an answer the delays fall: the first token (its run just started,
        # as did the others), the last one (its reply follows at once, while other
        # runs' replies are being saved) and the tokens in between.
        "delay_ms_by_position": {name: distribution(d) for name, d in by_position.items()},
        "tokens_expected": expected,
        "tokens_delivered": log.tokens,
        "duplicates": log.duplicates,
        "sent_rate_tokens_per_s": round(log.sent_rate(), 1),
    }


async def baseline_phase(stack: Stack, load: Load) -> dict[str, Any]:
    start_ns = time.time_ns() + int(0.3e9)
    log = await stream_direct(
        stack.relay_url,
        BASELINE_APP_TOKEN,
        runs=load.runs,
        tokens=load.tokens,
        rate=load.rate,
        start_ns=[load.start_of(n, start_ns) for n in range(load.runs)],
        seconds=load.duration_s() + 30,
    )
    return summarize(log, load.runs * load.tokens, load.tokens)


async def open_pages(login: Login, task_ids: list[int], per_task: int) -> list[Subscriber]:
    pages = [
        Subscriber(login, task_id, name=str(n)) for task_id in task_ids for n in range(per_task)
    ]
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def open_one(page: Subscriber) -> None:
        async with gate:
            await page.open()

    await asyncio.gather(*(open_one(page) for page in pages))
    return pages


async def pipeline_phase(
    stack: Stack, login: Login, load: Load, *, pages_per_task: int = 1
) -> tuple[dict[str, Any], list[Subscriber]]:
    """The same load through relaybridge, as ``pages_per_task`` pages per task see it."""
    task_ids = await asyncio.to_thread(actions.create_tasks, load.runs, "Streaming")
    pages = await open_pages(login, task_ids, pages_per_task)
    listeners = [asyncio.create_task(page.listen()) for page in pages]
    try:
        async with asyncio.timeout(30):
            await asyncio.gather(*(page.snapshot_seen.wait() for page in pages))
        start_ns = time.time_ns() + int(load.lead_s() * 1e9)

        def mention_all() -> None:
            for n, task_id in enumerate(task_ids):
                start = load.start_of(n, start_ns)
                actions.mention(
                    task_id, f"@load tokens={load.tokens} rate={load.rate:g} start={start}"
                )

        await asyncio.to_thread(mention_all)
        late = max(0.0, (time.time_ns() - start_ns) / 1e9)
        await asyncio.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9))
        cpu_before, wall_before = stack.cpu_seconds(), time.monotonic()
        try:
            async with asyncio.timeout(load.lead_s() + load.duration_s() + 60):
                await asyncio.gather(*(page.finished.wait() for page in pages))
        except TimeoutError:
            pass
        cpu = cpu_share(cpu_before, stack.cpu_seconds(), time.monotonic() - wall_before)
    finally:
        await asyncio.gather(*(page.close() for page in pages), return_exceptions=True)
        await asyncio.gather(*listeners, return_exceptions=True)
    log = TokenLog()
    for page in pages:
        subscriber_tokens(page, log)
    result = summarize(log, load.runs * load.tokens * pages_per_task, load.tokens)
    result["mentions_late_s"] = round(late, 3)
    result["accepted_lead_s_min"] = accepted_lead_s(pages, start_ns)
    result["cpu_share_while_streaming"] = cpu
    return result, pages


def accepted_lead_s(pages: list[Subscriber], start_ns: int) -> float:
    """How long before the common start the last run was accepted (negative: after it)."""
    accepted = [
        at
        for page in pages
        for at, raw in page.received
        if '"run.status"' in raw and json.loads(raw).get("status") == "accepted"
    ]
    return round((start_ns - max(accepted)) / 1e9, 3) if accepted else math.nan


def cpu_share(before: dict[str, float], after: dict[str, float], wall_s: float) -> dict[str, float]:
    """Each process's CPU use over ``wall_s`` seconds, as a share of one core."""
    return {
        role: round((after[role] - before[role]) / wall_s, 2)
        for role in after
        if role in before and wall_s > 0
    }


def added_p99(ours: dict[str, Any], baseline: dict[str, Any]) -> float:
    return round(float(ours["delay_ms"]["p99"]) - float(baseline["delay_ms"]["p99"]), 2)


def added_p50_at(position: str, ours: dict[str, Any], baseline: dict[str, Any]) -> float:
    """The p50 delay added to the tokens at ``position`` (first, middle, last) of answers."""
    mine = float(ours["delay_ms_by_position"][position]["p50"])
    theirs = float(baseline["delay_ms_by_position"][position]["p50"])
    return round(mine - theirs, 2)


def spread(values: list[float]) -> float:
    """The rounds' max - min (nan with fewer than two rounds)."""
    return round(max(values) - min(values), 2) if len(values) > 1 else math.nan


def delivered_all(result: dict[str, Any]) -> bool:
    return bool(
        result["tokens_delivered"] == result["tokens_expected"] and result["duplicates"] == 0
    )


async def added_latency(stack: Stack, login: Login, load: Load, repeats: int) -> dict[str, Any]:
    """Scenario 1 at the worker's current flush interval; the median over ``repeats``."""
    rounds: list[dict[str, Any]] = []
    for _ in range(repeats):
        baseline = await baseline_phase(stack, load)
        ours, _pages = await pipeline_phase(stack, login, load)
        rounds.append(
            {
                "baseline": baseline,
                "relaybridge": ours,
                "added_p99_ms": added_p99(ours, baseline),
                **{
                    f"{position}_token_added_p50_ms": added_p50_at(position, ours, baseline)
                    for position in POSITIONS
                },
            }
        )
    result: dict[str, Any] = {"flush_ms": stack.flush_ms}
    for key in ["added_p99_ms", *(f"{position}_token_added_p50_ms" for position in POSITIONS)]:
        values = [float(r[key]) for r in rounds]
        result[key] = round(median(values), 2)
        result[f"{key}_spread"] = spread(values)
    result["all_delivered"] = all(delivered_all(r["relaybridge"]) for r in rounds)
    result["rounds"] = rounds
    return result


def next_rate(ladder: list[float], tried: list[tuple[float, bool]], refine: int) -> float | None:
    """The next aggregate rate the throughput search tries, or ``None``: it is done.

    Up ``ladder`` until a rate is not kept up with; then ``refine`` more rates, each
    halfway between the highest rate kept up with and the lowest that was not. On
    a 1-2-5 ladder neighbouring rates are up to 2.5x apart, so a ceiling read off
    the ladder alone moves a whole rung when the p99 at one rate lands on either
    side of the bound; three halvings bring the step to an eighth of a rung.
    """
    failed = [rate for rate, kept_up in tried if not kept_up]
    passed = [rate for rate, kept_up in tried if kept_up]
    if not failed:
        higher = [rate for rate in ladder if rate > max(passed, default=0.0)]
        return min(higher) if higher else None
    low, high = max(passed, default=0.0), min(failed)
    first_failure = next(i for i, (_rate, kept_up) in enumerate(tried) if not kept_up)
    if low == 0.0 or len(tried) - 1 - first_failure >= refine:
        return None
    middle = float(round((low + high) / 2))
    return middle if low < middle < high else None


async def throughput_ceiling(
    stack: Stack,
    login: Login,
    *,
    runs: int,
    seconds: float,
    rates: list[float],
    pages_per_task: int,
    baselines: dict[float, dict[str, Any]],
    refine: int = 0,
    limit_ms: float = 250.0,
) -> dict[str, Any]:
    """Scenario 2: raise the aggregate rate until delivery falls behind, then refine."""
    steps = []
    tried: list[tuple[float, bool]] = []
    while (aggregate := next_rate(rates, tried, refine)) is not None:
        per_run = aggregate / runs
        load = Load(runs=runs, tokens=max(1, round(per_run * seconds)), rate=per_run)
        if aggregate not in baselines:
            baselines[aggregate] = await baseline_phase(stack, load)
        ours, _pages = await pipeline_phase(stack, login, load, pages_per_task=pages_per_task)
        added = added_p99(ours, baselines[aggregate])
        kept_up = added <= limit_ms and delivered_all(ours)
        tried.append((aggregate, kept_up))
        steps.append(
            {
                "aggregate_tokens_per_s": aggregate,
                "added_p99_ms": added,
                "kept_up": kept_up,
                "relaybridge": ours,
            }
        )
    return {
        "flush_ms": stack.flush_ms,
        "pages_per_task": pages_per_task,
        "tokens_per_s": max((rate for rate, kept_up in tried if kept_up), default=0.0),
        "steps": steps,
    }


async def bytes_to_browser(stack: Stack, login: Login, tokens: int, rate: float) -> dict[str, Any]:
    """Scenario 4: one answer of ``tokens`` tokens, deltas vs accumulated-text resends.

    The accumulated baseline re-encodes each ``run.delta`` the page received with the
    whole text so far in place of the delta, as a product that resends the
    accumulated text on every update would send it: same updates, same envelope.
    """
    ours, [page] = await pipeline_phase(stack, login, Load(runs=1, tokens=tokens, rate=rate))
    delta_bytes = accumulated_bytes = updates = 0
    text_so_far = ""
    for _at, raw in page.received:
        message = json.loads(raw)
        if message.get("type") != "run.delta":
            continue
        updates += 1
        text_so_far += message["text"]
        delta_bytes += len(raw.encode())
        accumulated_bytes += len(json.dumps({**message, "text": text_so_far}).encode())
    return {
        "tokens": tokens,
        "rate": rate,
        "flush_ms": stack.flush_ms,
        "updates": updates,
        "delta_bytes": delta_bytes,
        "accumulated_bytes": accumulated_bytes,
        "ratio": round(accumulated_bytes / delta_bytes, 2) if delta_bytes else 0.0,
        "all_bytes_received": sum(len(raw.encode()) for _at, raw in page.received),
        "delivery": ours,
    }
