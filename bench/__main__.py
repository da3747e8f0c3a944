"""``python -m bench [--quick]``: start the stack, run every scenario, write the results.

The full run takes several minutes; ``--quick`` runs each scenario once with tiny
loads (a minute or two, for CI: it proves the harness works, its numbers mean little).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import report

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
#: Quick runs write elsewhere, so that they never replace the figures of a full run.
QUICK_RESULTS = RESULTS.with_name("quick.json")


@dataclass
class Parameters:
    """Every knob of one benchmark run (all of it goes into the results)."""

    flush_ms: int = 50
    #: ``project`` (the example project's layers: the intake on channels_redis's
    #: list-based layer, pages' streams on its Pub/Sub layer) or ``redis`` (all on
    #: the list-based layer).
    channel_layer: str = "project"
    latency_runs: int = 100
    latency_tokens: int = 100
    latency_rate: float = 20.0
    latency_repeats: int = 3
    throughput_runs: int = 100
    throughput_seconds: float = 3.0
    throughput_rates_on: list[float] = field(
        default_factory=lambda: [500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0, 40000.0, 80000.0]
    )
    throughput_rates_off: list[float] = field(
        default_factory=lambda: [250.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0, 20000.0]
    )
    throughput_pages: list[int] = field(default_factory=lambda: [1, 3])
    #: Rates tried between the last rung kept up with and the first one not.
    throughput_refine: int = 3
    mention_rate: float = 20.0
    mention_steady_count: int = 100
    mention_concurrency: int = 8
    mention_loop_count: int = 200
    trips_mentions: int = 200
    trips_rounds: int = 3
    bytes_tokens: int = 2000
    bytes_rate: float = 200.0
    memory_runs: int = 1000
    memory_batches: int = 2
    memory_seconds: float = 10.0
    memory_rate: float = 5.0
    fairness_burst: int = 125
    fairness_probes: int = 10
    fairness_probe_every_s: float = 2.0
    watchers_sockets: int = 2000
    watchers_rss_rounds: int = 3
    fanout_watchers: int = 500
    fanout_tokens: int = 100
    fanout_rounds: int = 3
    pages_comments: list[int] = field(default_factory=lambda: [5, 200])
    pages_rounds: int = 3
    pages_requests: int = 15
    remote_rtt_ms: float = 40.0
    remote_rounds: int = 3
    remote_per_round: int = 30
    remote_pings: int = 10
    thinking_rounds: int = 3
    thinking_per_round: int = 10

    @classmethod
    def quick(cls) -> Parameters:
        return cls(
            latency_runs=5,
            latency_tokens=20,
            latency_rate=40.0,
            latency_repeats=1,
            throughput_runs=5,
            throughput_seconds=0.5,
            throughput_rates_on=[400.0],
            throughput_rates_off=[400.0],
            throughput_pages=[1],
            throughput_refine=1,
            mention_rate=20.0,
            mention_steady_count=10,
            mention_concurrency=2,
            mention_loop_count=10,
            trips_mentions=3,
            bytes_tokens=200,
            bytes_rate=400.0,
            memory_runs=10,
            memory_batches=1,
            memory_seconds=1.0,
            memory_rate=10.0,
            fairness_burst=20,
            fairness_probes=3,
            fairness_probe_every_s=0.5,
            watchers_sockets=50,
            watchers_rss_rounds=2,
            fanout_watchers=20,
            fanout_tokens=10,
            fanout_rounds=3,
            pages_comments=[5, 20],
            pages_rounds=3,
            pages_requests=2,
            remote_rounds=3,
            remote_per_round=2,
            remote_pings=3,
            thinking_rounds=3,
            # Two: the second post on a task waits for the first (stopped) one's answer.
            thinking_per_round=2,
        )


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


SCENARIOS = (
    "mention",
    "trips",
    "remote",
    "thinking",
    "latency",
    "throughput",
    "bytes",
    "memory",
    "watchers",
    "pages",
    "fairness",
)


async def run_scenarios(
    stack: Any, params: Parameters, only: frozenset[str]
) -> tuple[dict[str, float], dict[str, Any]]:
    from . import fairness, ledger, streaming
    from .clients import sign_in
    from .stack import DEMO_LOGIN

    nan = float("nan")
    figures: dict[str, float] = {key: nan for key in report.REQUIRED_KEYS}
    figures["flush_ms"] = float(params.flush_ms)
    login = await asyncio.to_thread(sign_in, stack.daphne_url, *DEMO_LOGIN)
    scenarios: dict[str, Any] = {"worker_rss_mb_cold": ledger.rss_mb(stack.worker.pid)}
    #: Figures that are medians of rounds: the rounds' max - min, printed beside them.
    spreads: dict[str, float] = {}
    scenarios["spreads"] = spreads
    # As many runs as the latency scenario starts at once: the first burst opens the
    # processes' Redis and database connections, which a running deployment has open.
    log("warm-up")
    warm_up = streaming.Load(runs=params.latency_runs, tokens=5, rate=params.latency_rate)
    await streaming.pipeline_phase(stack, login, warm_up)

    if "mention" in only:
        log("mention -> accepted")
        mentions = await ledger.mention_to_accepted(
            stack,
            rate=params.mention_rate,
            steady_count=params.mention_steady_count,
            concurrency=params.mention_concurrency,
            loop_count=params.mention_loop_count,
        )
        scenarios["mention_to_accepted"] = mentions
        figures["mention_to_accepted_p50_ms"] = mentions["steady"]["latency_ms"]["p50"]
    if "trips" in only:
        from . import trips

        per_round, rounds = params.trips_mentions, params.trips_rounds
        log(f"the relay worker's database thread, {rounds} x {per_round} mentions")
        found = await asyncio.to_thread(trips.in_subprocess, per_round, rounds)
        scenarios["worker_db_trips"] = found
        figures["worker_db_ms_per_mention"] = found["wall_ms_per_mention"]
        spreads["worker_db_ms_per_mention"] = found["wall_ms_per_mention_spread"]

    if "remote" in only:
        from . import remote

        log(f"remote Relay: TLS behind a {params.remote_rtt_ms:g} ms round trip")
        scenarios["remote_relay"] = await remote.scenario(stack, params, figures, spreads)
    if "thinking" in only:
        from . import thinking

        log("post -> thinking in Chromium, on the stack, then on the embedded demo")
        scenarios["post_to_thinking"] = await thinking.scenario(stack, params, figures, spreads)

    latency_load = streaming.Load(params.latency_runs, params.latency_tokens, params.latency_rate)
    baselines: dict[float, dict[str, Any]] = {}
    scenarios["throughput_baselines"] = baselines

    async def streaming_scenarios(coalescing: str, rates: list[float]) -> None:
        if "latency" in only:
            log(f"added latency, coalescing {coalescing} (flush {stack.flush_ms} ms)")
            latency = await streaming.added_latency(
                stack, login, latency_load, params.latency_repeats
            )
            scenarios[f"added_latency_coalescing_{coalescing}"] = latency
            key = f"added_latency_p99_ms_coalescing_{coalescing}"
            figures[key] = latency["added_p99_ms"]
            spreads[key] = latency["added_p99_ms_spread"]
            if coalescing == "off":
                # Coalescing off, every token is pushed as it comes: the first and the
                # last compare with the middle ones without a flush deadline between.
                for position in ("first", "last"):
                    key = f"{position}_token_added_p50_ms"
                    figures[key] = latency[key]
                    spreads[key] = latency[f"{key}_spread"]
        if "throughput" in only:
            ceilings = []
            for pages in params.throughput_pages:
                log(f"throughput, coalescing {coalescing}, {pages} page(s) per task")
                ceilings.append(
                    await streaming.throughput_ceiling(
                        stack,
                        login,
                        runs=params.throughput_runs,
                        seconds=params.throughput_seconds,
                        rates=rates,
                        pages_per_task=pages,
                        baselines=baselines,
                        refine=params.throughput_refine,
                    )
                )
            scenarios[f"throughput_coalescing_{coalescing}"] = ceilings
            figures[f"throughput_tokens_per_s_coalescing_{coalescing}"] = ceilings[0][
                "tokens_per_s"
            ]

    await streaming_scenarios("on", params.throughput_rates_on)
    if "bytes" in only:
        log("bytes to the browser")
        sizes = await streaming.bytes_to_browser(
            stack, login, params.bytes_tokens, params.bytes_rate
        )
        scenarios["bytes_to_browser"] = sizes
        figures["bytes_ratio_accumulated_vs_delta"] = sizes["ratio"]
    if "memory" in only:
        log(f"memory, {params.memory_runs} runs")
        memory = await ledger.worker_memory(
            stack,
            params.memory_runs,
            params.memory_seconds,
            params.memory_rate,
            batches=params.memory_batches,
        )
        scenarios["memory"] = memory
        figures["worker_rss_mb_1000_runs"] = memory["rss_mb_peak"]
        figures["worker_rss_mb_idle"] = memory["rss_mb_idle"]
        figures["worker_rss_mb_after_runs"] = memory["rss_mb_after"]
    if "watchers" in only:
        await watchers_scenarios(stack, params, login, figures, scenarios, spreads)
    if "pages" in only:
        from . import pages

        small, big = params.pages_comments
        log(f"big threads: the task page with {small} and {big} comments")
        threads = await asyncio.to_thread(
            pages.big_threads,
            small=small,
            big=big,
            rounds=params.pages_rounds,
            requests=params.pages_requests,
        )
        scenarios["pages"] = threads
        figures["page_queries_5"] = threads["queries"][str(small)]
        figures["page_queries_200"] = threads["queries"][str(big)]
        figures["page_render_ratio_200"] = threads["ratio_200"]
        spreads["page_render_ratio_200"] = max_minus_min(threads["ratio_200_spread"])
    if only & {"latency", "throughput"}:
        log("restarting the relay worker with coalescing off")
        await asyncio.to_thread(stack.restart_worker, 0)
        log("warm-up of the new worker")
        await streaming.pipeline_phase(stack, login, warm_up)
        await streaming_scenarios("off", params.throughput_rates_off)
    if "fairness" in only:
        # Last: the worker is paced to a real plan from here on, and the burst's
        # remainder is still queued when the stack stops.
        log(f"fairness: another person's wait, alone and behind a burst of {params.fairness_burst}")
        await asyncio.to_thread(stack.restart_worker, stack.flush_ms, plan=fairness.PLAN)
        fair = await fairness.fair_use(
            stack,
            burst=params.fairness_burst,
            probes=params.fairness_probes,
            every_s=params.fairness_probe_every_s,
        )
        scenarios["fairness"] = fair
        figures["fairness_wait_p50_ms_alone"] = fair["wait_to_sent_ms_alone"]["p50"]
        figures["fairness_wait_p50_ms_behind_burst"] = fair["wait_to_sent_ms_behind_burst"]["p50"]
    scenarios["throughput_baselines"] = {str(k): v for k, v in baselines.items()}
    return figures, scenarios


async def watchers_scenarios(
    stack: Any,
    params: Parameters,
    login: Any,
    figures: dict[str, float],
    scenarios: dict[str, Any],
    spreads: dict[str, float],
) -> None:
    from . import watchers

    log(f"watchers: Daphne's RSS with {params.watchers_sockets} idle pages")
    rss = await watchers.rss_per_socket(
        stack, login.cookie, sockets=params.watchers_sockets, rounds=params.watchers_rss_rounds
    )
    scenarios["watchers_rss"] = rss
    figures["watchers_rss_kb_per_socket"] = rss["kb_per_socket"]
    spreads["watchers_rss_kb_per_socket"] = max_minus_min(rss["kb_per_socket_spread"])
    for daphnes, key in ((1, "fanout_500_p99_ms"), (2, "fanout_500_p99_ms_two_daphne")):
        log(f"fan-out to {params.fanout_watchers} pages on {daphnes} Daphne process(es)")
        found = await watchers.fanout(
            stack,
            login.cookie,
            watchers=params.fanout_watchers,
            tokens=params.fanout_tokens,
            rounds=params.fanout_rounds,
            daphnes=daphnes,
        )
        scenarios[f"fanout_{daphnes}_daphne"] = found
        figures[key] = found["p99_ms"]
        spreads[key] = max_minus_min(found["p99_ms_spread"])
        if daphnes == 2:
            stop_key = "stop_to_other_daphne_ms"
            figures[stop_key] = found["stop_to_last_page_other_daphne_ms"]
            spreads[stop_key] = max_minus_min(found["stop_to_last_page_other_daphne_ms_spread"])


def _override(params: Parameters, assignment: str) -> None:
    name, sep, value = assignment.partition("=")
    if not sep or not hasattr(params, name):
        raise SystemExit(
            f"--set expects PARAMETER=VALUE with a known parameter, got {assignment!r}"
        )
    current = getattr(params, name)
    if isinstance(current, list):
        setattr(
            params, name, [type(current[0])(v) if current else float(v) for v in value.split(",")]
        )
    else:
        setattr(params, name, type(current)(value))


@contextlib.contextmanager
def profiling(pid: int, output: Path | None) -> Iterator[None]:
    """``py-spy record`` the process ``pid`` while the block runs (nothing without a file)."""
    if output is None:
        yield
        return
    spy = Path(sys.executable).with_name("py-spy")
    # ``.txt``: collapsed stacks (one line per stack and its sample count), else an SVG.
    style = "raw" if output.suffix == ".txt" else "flamegraph"
    cmd = [str(spy), "record", "--pid", str(pid), "--output", str(output), "--format", style]
    cmd.append("--nonblocking")
    recorder = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)
        recorder.wait(timeout=60)
        log(f"profile of the relay worker in {output}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny loads, a minute or two")
    parser.add_argument(
        "--out", type=Path, default=None, help="results file (latest.json; --quick: quick.json)"
    )
    parser.add_argument("--keep-logs", type=Path, default=None, help="directory for process logs")
    parser.add_argument(
        "--only", default=",".join(SCENARIOS), help=f"comma-separated subset of {SCENARIOS}"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="FILE",
        help="record the relay worker with py-spy into FILE (.svg flame graph, .txt stacks)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="PARAMETER=VALUE", help="override a parameter"
    )
    args = parser.parse_args(argv)
    if args.out is None:
        args.out = QUICK_RESULTS if args.quick else RESULTS
    params = Parameters.quick() if args.quick else Parameters()
    for assignment in args.set:
        _override(params, assignment)
    if params.channel_layer not in {"project", "redis"}:
        parser.error(f"channel_layer is 'project' or 'redis', not {params.channel_layer!r}")
    only = frozenset(name.strip() for name in args.only.split(",") if name.strip())
    if only - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(only - set(SCENARIOS)))}")

    from .stack import running_stack
    from .watchers import raise_fd_limit

    # Daphne holds a descriptor per page socket; the processes started inherit this.
    raise_fd_limit()

    began = time.monotonic()
    # Other work on the machine weighs on every figure: say how busy it was.
    load_at_start = list(os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="relaybridge-bench-") as scratch:
        workdir = args.keep_logs or Path(scratch)
        log(f"starting the stack (logs in {workdir})")
        layer = params.channel_layer
        with running_stack(workdir, flush_ms=params.flush_ms, channel_layer=layer) as stack:
            log(f"relay worker pid {stack.worker.pid}, Daphne at {stack.daphne_url}")
            with profiling(stack.worker.pid, args.profile):
                figures, scenarios = asyncio.run(run_scenarios(stack, params, only))
    parameters: dict[str, Any] = asdict(params)
    parameters["scenarios"] = sorted(only)
    parameters["load_average_at_start"] = load_at_start
    parameters["load_average_at_end"] = list(os.getloadavg())
    parameters["seconds_taken"] = round(time.monotonic() - began, 1)
    result = report.assemble(
        figures,
        mode="quick" if args.quick else "full",
        parameters=parameters,
        scenarios=scenarios,
        spreads=scenarios.pop("spreads", {}),
    )
    report.write(result, args.out)
    print(report.table(result))
    log(f"wrote {args.out} in {parameters['seconds_taken']} s")
    return 0


def max_minus_min(low_high: list[float]) -> float:
    """A spread kept as ``[min, max]`` over the rounds as the report prints spreads:
    the rounds' max - min (nan without two rounds)."""
    if len(low_high) < 2:
        return float("nan")
    return float(low_high[1] - low_high[0])


if __name__ == "__main__":
    sys.exit(main())
