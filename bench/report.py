"""The results file and the printed table.

``assemble`` puts the required figures at the top level of the JSON (numbers,
NaN written as null when a scenario could not measure one), next to the machine,
the versions, every parameter and each scenario's details. A figure that is the
median of several rounds has its spread (the rounds' max - min) under ``spreads``,
printed beside it in the table.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

#: Top-level figures: key, label, unit, target (text).
FIGURES: list[tuple[str, str, str, str]] = [
    ("added_latency_p99_ms_coalescing_off", "added latency p99, coalescing off", "ms", "<= 10"),
    (
        "added_latency_p99_ms_coalescing_on",
        "added latency p99, coalescing on",
        "ms",
        "<= flush + 10",
    ),
    ("first_token_added_p50_ms", "first token of an answer, added p50", "ms", "<= 5"),
    ("last_token_added_p50_ms", "last token of an answer, added p50", "ms", "<= 5"),
    ("flush_ms", "flush interval", "ms", ""),
    ("throughput_tokens_per_s_coalescing_on", "throughput, coalescing on", "tok/s", ">= 20000"),
    ("throughput_tokens_per_s_coalescing_off", "throughput, coalescing off", "tok/s", ">= 5000"),
    ("mention_to_accepted_p50_ms", "mention -> accepted p50", "ms", "<= 25"),
    ("worker_db_ms_per_mention", "relay worker DB thread per mention", "ms", ""),
    ("remote_rtt_ms", "remote Relay: RTT through the proxy", "ms", ""),
    ("remote_accepted_p50_ms", "remote: mention -> accepted p50", "ms", "<= RTT + 25, <= 1/3 next"),
    (
        "remote_accepted_p50_ms_connection_per_event",
        "remote: conn-per-event task -> accepted",
        "ms",
        "",
    ),
    ("post_to_thinking_p50_ms", "post -> thinking shown, stack, p50", "ms", "<= 100"),
    ("post_to_thinking_p50_ms_demo", "post -> thinking shown, demo, p50", "ms", ""),
    ("bytes_ratio_accumulated_vs_delta", "bytes: accumulated / delta", "x", ""),
    ("worker_rss_mb_1000_runs", "worker RSS, runs streaming", "MB", "<= 150"),
    ("worker_rss_mb_idle", "worker RSS idle", "MB", ""),
    ("worker_rss_mb_after_runs", "worker RSS after the runs end", "MB", "<= idle + 10%"),
    ("fairness_wait_p50_ms_alone", "another person's wait p50, alone", "ms", ""),
    (
        "fairness_wait_p50_ms_behind_burst",
        "another person's wait p50, burst queued",
        "ms",
        "",
    ),
    ("watchers_rss_kb_per_socket", "Daphne RSS per idle page socket", "KB", "<= 60"),
    ("fanout_500_p99_ms", "fan-out push -> last of 500 pages p99", "ms", "<= 100"),
    ("fanout_500_p99_ms_two_daphne", "fan-out p99, two Daphne processes", "ms", "<= 100"),
    ("stop_to_other_daphne_ms", "Stop -> last page on the other Daphne", "ms", ""),
    ("page_queries_5", "task page queries, 5 comments", "", "= 200's"),
    ("page_queries_200", "task page queries, 200 comments", "", "= 5's"),
    ("page_render_ratio_200", "task page render vs without tags, 200", "x", "<= 1.2"),
]
REQUIRED_KEYS = [key for key, *_ in FIGURES]

PACKAGES = [
    "django",
    "channels",
    "channels-redis",
    "daphne",
    "websockets",
    "redis",
    "celery",
    "psycopg",
]


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_mb"] = int(line.split()[1]) // 1024
                break
    except OSError:
        pass
    return info


def versions() -> dict[str, str]:
    found = {}
    for name in ["relaybridge", *PACKAGES]:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    for name, cmd in {
        "redis-server": ["redis-server", "--version"],
        "postgres": ["postgres", "--version"],
    }.items():
        try:
            found[name] = subprocess.run(
                cmd, capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except OSError:
            found[name] = "unknown"
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        found["git_commit"] = commit.stdout.strip()
    except OSError:
        pass
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value):
        return float(value)
    return None


def assemble(
    figures: dict[str, float],
    *,
    mode: str,
    parameters: dict[str, Any],
    scenarios: dict[str, Any],
    spreads: dict[str, float] | None = None,
) -> dict[str, Any]:
    missing = [key for key in REQUIRED_KEYS if key not in figures]
    if missing:
        raise ValueError(f"figures missing: {', '.join(missing)}")
    result: dict[str, Any] = {key: _number(figures[key]) for key in REQUIRED_KEYS}
    result["spreads"] = {key: _number(value) for key, value in (spreads or {}).items()}
    result.update(
        mode=mode,
        machine=machine(),
        versions=versions(),
        parameters=parameters,
        scenarios=scenarios,
    )
    return result


def table(result: dict[str, Any]) -> str:
    spreads = result.get("spreads") or {}
    lines = [f"{'figure':40} {'value':>10} {'spread':>8}  {'unit':5} target", "-" * 81]
    for key, label, unit, target in FIGURES:
        value = result.get(key)
        shown = "n/a" if value is None else f"{value:,.1f}"
        spread = spreads.get(key)
        spread_shown = "" if spread is None or value is None else f"{spread:,.1f}"
        lines.append(f"{label:40} {shown:>10} {spread_shown:>8}  {unit:5} {target}")
    return "\n".join(lines)


def without_nan(value: Any) -> Any:
    """``value`` with every NaN replaced by ``None`` (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: without_nan(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(item) for item in value]
    return value


def write(result: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(without_nan(result), indent=2, allow_nan=False) + "\n")
