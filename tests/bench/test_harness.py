"""The benchmark harness measures what it claims: the load agent's stamped tokens,
the baseline clients against a real emulator, token accounting, and the results file.

No figure is asserted (this machine's timing is nobody's business in a test); what
is checked is that tokens are counted once, losses and repeats are seen, and the
results always carry every required key. ``make bench-quick`` runs the whole stack.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from bench import report
from bench.clients import Login, Subscriber, TokenLog, subscriber_tokens
from bench.direct import accept_per_connection, stream_direct
from bench.stack import Stack
from bench.stats import distribution, percentile
from bench.streaming import next_rate
from relaybridge.emulator.load import LoadProfile, parse_stamps, stamp
from relaybridge.testing import TEST_APP_TOKEN, running_emulator

# -- the load agent ----------------------------------------------------------------------


def test_a_stamp_carries_its_index_and_send_time_and_survives_coalescing() -> None:
    joined = stamp(0, 1_700_000_000_000_000_001) + stamp(1, 1_700_000_000_000_000_002)
    assert joined == " 0@1700000000000000001 1@1700000000000000002"
    assert parse_stamps(joined) == [(0, 1_700_000_000_000_000_001), (1, 1_700_000_000_000_000_002)]
    assert parse_stamps("no stamps here") == []


def test_an_event_overrides_the_profile_and_a_bad_profile_is_refused() -> None:
    profile = LoadProfile(tokens=10, rate=5.0)
    assert profile.for_payload({}) == (10, 5.0, 0)
    assert profile.for_payload({"message": "@load tokens=3 rate=200 start=42"}) == (3, 200.0, 42)
    assert profile.for_payload({"load_tokens": 7, "load_rate": 9.5}) == (7, 9.5, 0)
    # Nonsense falls back to the defaults instead of streaming nothing.
    assert profile.for_payload({"load_tokens": -1, "load_rate": True}) == (10, 5.0, 0)
    with pytest.raises(ValueError):
        LoadProfile(tokens=0)
    with pytest.raises(ValueError):
        LoadProfile(rate=0)


async def test_the_baseline_client_reads_every_stamped_token_of_a_real_emulator() -> None:
    async with running_emulator(load_agent=LoadProfile()) as relay:
        log = await stream_direct(
            relay.url, TEST_APP_TOKEN, runs=3, tokens=7, rate=500.0, start_ns=0, seconds=20
        )
    assert log.tokens == 21
    assert log.duplicates == 0
    assert sorted(log.seen.values(), key=len) == [set(range(7))] * 3
    assert len(log.delays_ms) == 21 and all(delay >= 0 for delay in log.delays_ms)


async def test_the_load_agent_is_only_offered_when_asked_for() -> None:
    async with running_emulator() as relay:
        log = await stream_direct(
            relay.url, TEST_APP_TOKEN, runs=1, tokens=3, rate=500.0, start_ns=0, seconds=5
        )
    # Refused with AGENT_NOT_FOUND: an error ends the run, no token ever arrives.
    assert log.tokens == 0


async def test_connection_per_event_times_each_accepted_event() -> None:
    async with running_emulator(load_agent=LoadProfile()) as relay:
        latencies, rate = await accept_per_connection(
            relay.url, TEST_APP_TOKEN, concurrency=2, count=5
        )
        assert relay.stats.events_accepted == 5
    assert len(latencies) == 5 and rate > 0


# -- token accounting --------------------------------------------------------------------


def test_a_repeated_delta_is_a_duplicate_but_a_status_repeating_the_text_is_not() -> None:
    log = TokenLog()
    log.add("r", stamp(0, 1_000_000) + stamp(1, 2_000_000), arrived_ns=5_000_000)
    log.add("r", stamp(0, 1_000_000) + stamp(1, 2_000_000), 6_000_000, whole_text=True)
    assert (log.tokens, log.duplicates) == (2, 0)
    log.add("r", stamp(1, 2_000_000), arrived_ns=7_000_000)
    assert (log.tokens, log.duplicates) == (2, 1)
    # Each token's delay is counted once, from its first arrival.
    assert log.delays_ms == [4.0, 3.0]


def test_a_page_counts_tokens_from_deltas_and_from_the_text_so_far() -> None:
    page = Subscriber(Login("http://127.0.0.1:1", "sessionid=x"), task_id=1)
    messages = [
        {"type": "snapshot", "runs": [{"run": "a", "text": stamp(0, 10), "seq": 1}]},
        {"type": "run.delta", "run": "a", "seq": 2, "text": stamp(1, 20)},
        {
            "type": "run.status",
            "run": "a",
            "status": "streaming",
            "text": stamp(0, 10) + stamp(1, 20),
        },
        {"type": "run.delta", "run": "a", "seq": 4, "text": stamp(3, 40)},
    ]
    page.received = [(1_000, json.dumps(message)) for message in messages]
    log = subscriber_tokens(page)
    # Token 2 never arrived: a loss the scenario reports as tokens not delivered.
    assert log.seen == {"1::a": {0, 1, 3}}
    assert (log.tokens, log.duplicates) == (3, 0)


# -- the stack's processes ---------------------------------------------------------------


def test_the_stack_counts_the_cpu_of_its_own_daphne_not_one_started_later() -> None:
    processes = [
        SimpleNamespace(name="daphne", pid=101, alive=True),
        SimpleNamespace(name="celery", pid=102, alive=True),
        SimpleNamespace(name="daphne", pid=103, alive=True),  # the browser scenario's
        SimpleNamespace(name="relay_worker", pid=104, alive=False),  # restarted since
    ]
    stack = Stack(
        deployment=cast(Any, SimpleNamespace(processes=processes)),
        emulator=cast(Any, SimpleNamespace(pid=105)),
        worker=cast(Any, SimpleNamespace(pid=106)),
        daphne_url="http://127.0.0.1:1",
        flush_ms=50,
    )
    assert stack.pids() == {
        "daphne": 101,
        "celery": 102,
        "relay_worker": 106,
        "emulator": 105,
        "driver": os.getpid(),
    }


# -- the throughput search ---------------------------------------------------------------

LADDER = [5000.0, 10000.0, 20000.0, 40000.0]


def search(ceiling: float, refine: int) -> list[float]:
    """The rates tried against a pipeline that keeps up with exactly ``ceiling``."""
    tried: list[tuple[float, bool]] = []
    while (rate := next_rate(LADDER, tried, refine)) is not None:
        tried.append((rate, rate <= ceiling))
        assert len(tried) <= len(LADDER) + refine, tried
    return [rate for rate, _kept_up in tried]


def test_the_throughput_search_climbs_the_ladder_then_halves_between_pass_and_fail() -> None:
    assert search(17000.0, refine=0) == [5000.0, 10000.0, 20000.0]
    # 20,000 not kept up with; 15,000 kept up with, 17,500 not, 16,250 kept up with.
    assert search(17000.0, refine=3) == [5000.0, 10000.0, 20000.0, 15000.0, 17500.0, 16250.0]
    # A ceiling between two rungs is bracketed to an eighth of the gap between them.
    for ceiling, (low_rung, high_rung) in {
        12000.0: (10000.0, 20000.0),
        19999.0: (10000.0, 20000.0),
        26000.0: (20000.0, 40000.0),
        39000.0: (20000.0, 40000.0),
    }.items():
        tried = search(ceiling, refine=3)
        best = max(rate for rate in tried if rate <= ceiling)
        failed = min(rate for rate in tried if rate > ceiling)
        assert best < failed <= best + (high_rung - low_rung) / 8, (ceiling, tried)


def test_the_throughput_search_ends_at_the_top_of_the_ladder_or_below_its_first_rung() -> None:
    # Every rung kept up with: nothing to refine, the ceiling is above the ladder.
    assert search(1e9, refine=3) == LADDER
    # The first rung already failed: nothing kept up with to refine from.
    assert search(100.0, refine=3) == [5000.0]
    # Halving stops when the rates are a token per second apart.
    assert next_rate(LADDER, [(5000.0, True), (5001.0, False)], refine=3) is None


# -- statistics and the results file -----------------------------------------------------


def test_percentiles_are_nearest_rank_and_empty_is_nan() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0
    assert math.isnan(percentile([], 50))
    assert distribution([1.0, 2.0])["count"] == 2


def test_the_results_carry_every_required_key_as_a_number_or_null(tmp_path: Path) -> None:
    figures = {key: float(n) for n, key in enumerate(report.REQUIRED_KEYS)}
    figures["worker_rss_mb_idle"] = math.nan  # a scenario that was not run
    result = report.assemble(
        figures, mode="quick", parameters={"runs": 3}, scenarios={"x": {"p99": math.nan}}
    )
    path = tmp_path / "latest.json"
    report.write(result, path)
    written = json.loads(path.read_text())
    for key in report.REQUIRED_KEYS:
        assert key in written
        assert written[key] is None or isinstance(written[key], float)
    assert written["worker_rss_mb_idle"] is None
    assert written["scenarios"] == {"x": {"p99": None}}
    assert written["parameters"] == {"runs": 3}
    assert {"python", "cpus"} <= set(written["machine"])
    assert "websockets" in written["versions"]
    assert "added latency p99, coalescing off" in report.table(written)


def test_results_missing_a_required_figure_are_refused() -> None:
    figures = {key: 1.0 for key in report.REQUIRED_KEYS[1:]}
    with pytest.raises(ValueError, match=report.REQUIRED_KEYS[0]):
        report.assemble(figures, mode="quick", parameters={}, scenarios={})
