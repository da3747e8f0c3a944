"""Remote Relay: mention → ``accepted`` when Relay is a round trip away, over TLS.

Relay is hosted: every frame crosses the network, and a new connection pays for a
TCP handshake, a TLS handshake and the WebSocket upgrade before its event can go.
This scenario puts a second emulator behind TLS (a throwaway authority,
:mod:`.tls`, that the relay worker is told to trust with
``RELAYBRIDGE_RELAY_CA_FILE``) and behind :mod:`.delay_proxy` (``rtt_ms``, 40 ms
by default), points the relay worker at it, and times, side by side and
interleaved, from just before a comment is saved to Relay's ``accepted``:

* relaybridge: a mention; the run's ``accepted_at``, on the worker's shared connection;
* Relay's own examples: the comment queues a Celery task on the same Celery worker
  (:mod:`.remote_task`) that connects, sends the event, waits for ``accepted``
  and closes.

``remote_rtt_ms`` is Relay's JSON ``ping`` → ``pong`` through the proxy. Each
figure is the median of the rounds' medians; the spread is the rounds' range.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from relaybridge.testing import TEST_APP_ID, TEST_APP_TOKEN, free_port
from tests.deployment.processes import LoggedEmulatorProcess, ManagedProcess
from tests.deployment.waiting import wait_until

from . import actions
from .remote_task import RESULT_KEY, TASK_NAME
from .stack import BASELINE_APP_ID, BASELINE_APP_TOKEN, Stack
from .stats import distribution, median
from .tls import Certificates, make_certificates

QUICK_ANSWER = "@load tokens=1 rate=1000"
PLAIN_COMMENT = "A comment that mentions nobody."
POLL_S = 0.002
WAIT_S = 30.0


@dataclass
class RemoteRelay:
    emulator: LoggedEmulatorProcess
    proxy: ManagedProcess
    certificates: Certificates
    port: int

    @property
    def url(self) -> str:
        """The app endpoint through the proxy (the certificate names 127.0.0.1)."""
        return f"wss://127.0.0.1:{self.port}/v1/ws/app"

    def worker_env(self) -> dict[str, str]:
        return {"RELAY_URL": self.url, "RELAYBRIDGE_BENCH_RELAY_CA_FILE": str(self.ca_file)}

    @property
    def ca_file(self) -> Path:
        return self.certificates.ca_file


@contextmanager
def remote_relay(stack: Stack, rtt_ms: float) -> Iterator[RemoteRelay]:
    """A TLS emulator behind the delay proxy, for the duration of the block."""
    workdir = stack.deployment.workdir
    certificates = make_certificates(workdir / "tls")
    emulator = LoggedEmulatorProcess(
        log_path=workdir / "emulator-remote.log",
        log_level="WARNING",
        app_tokens={TEST_APP_TOKEN: TEST_APP_ID, BASELINE_APP_TOKEN: BASELINE_APP_ID},
        args=[
            "--plan",
            "unlimited",
            "--load-agent",
            "--agents",
            "load",
            "--tls-cert",
            str(certificates.cert_file),
            "--tls-key",
            str(certificates.key_file),
        ],
    )
    emulator.start()
    proxy: ManagedProcess | None = None
    try:
        port = free_port()
        cmd = [sys.executable, "-m", "bench.delay_proxy", "--port", str(port)]
        cmd += ["--target", f"127.0.0.1:{emulator.port}", "--rtt-ms", str(rtt_ms)]
        proxy = stack.deployment.start_process("delay_proxy", cmd)
        running = proxy

        def listening() -> bool:
            if not running.alive:
                raise RuntimeError(f"the delay proxy exited:\n{running.log_text()}")
            return "listening on" in running.log_text()

        wait_until(listening, 15, "the delay proxy to listen", interval=0.05)
        yield RemoteRelay(emulator, proxy, certificates, port)
    finally:
        if proxy is not None and proxy.alive:
            proxy.send_signal(signal.SIGTERM)
            proxy.wait(10)
        emulator.terminate()


# -- the round trip ----------------------------------------------------------------------


async def ping_rtt_ms(remote: RemoteRelay, count: int) -> list[float]:
    """Relay's JSON ``ping`` → ``pong`` through the proxy, ``count`` times on one connection."""
    tls = ssl.create_default_context(cafile=remote.ca_file)
    times = []
    async with connect(
        remote.url,
        additional_headers={"Authorization": f"Bearer {BASELINE_APP_TOKEN}"},
        ping_interval=None,
        proxy=None,
        ssl=tls,
    ) as conn:
        for _ in range(count):
            began = time.perf_counter()
            await conn.send(json.dumps({"type": "ping"}))
            async for message in conn:
                if json.loads(message).get("type") == "pong":
                    break
            times.append((time.perf_counter() - began) * 1000)
    return times


# -- the two ways to reach Relay ---------------------------------------------------------


def _run_times(comment_id: int) -> tuple[int, int] | None:
    """(event sent to Relay, accepted) in wall-clock ns, once the run is accepted."""
    from relaybridge.models import AgentRun

    row = (
        AgentRun.objects.filter(comment_id=comment_id, accepted_at__isnull=False)
        .values_list("sent_at", "accepted_at")
        .first()
    )
    if row is None or row[0] is None or row[1] is None:
        return None
    return int(row[0].timestamp() * 1e9), int(row[1].timestamp() * 1e9)


def mention_once(task_id: int) -> dict[str, float]:
    """relaybridge: a mention, timed to its run's ``accepted_at`` (sync; in a thread)."""
    comment_id, saved = actions.mention(task_id, QUICK_ANSWER)
    deadline = time.monotonic() + WAIT_S
    while (found := _run_times(comment_id)) is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the run of comment {comment_id} was not accepted in time")
        time.sleep(POLL_S)
    sent, accepted = found
    return {
        "accepted_ms": (accepted - saved) / 1e6,
        "to_sent_ms": (sent - saved) / 1e6,
        "sent_to_accepted_ms": (accepted - sent) / 1e6,
    }


def per_connection_once(
    stack: Stack, remote: RemoteRelay, task_id: int, n: int
) -> dict[str, float]:
    """Relay's examples: the comment queues a task that connects, sends, waits, closes."""
    from project.celery import app

    key = f"{time.time_ns()}-{n}"
    _comment_id, saved = actions.mention(task_id, PLAIN_COMMENT)
    args = [
        key,
        remote.url,
        BASELINE_APP_TOKEN,
        f"remote-per-connection-{key}",
        str(remote.ca_file),
    ]
    app.send_task(TASK_NAME, args=args)
    redis = stack.deployment.redis
    deadline = time.monotonic() + WAIT_S
    while (raw := redis.get(RESULT_KEY.format(key=key))) is None:
        if time.monotonic() > deadline:
            raise RuntimeError("the connection-per-event task did not report in time")
        time.sleep(POLL_S)
    times = json.loads(raw)
    if "error" in times:
        raise RuntimeError(f"the connection-per-event task failed: {times['error']}")
    return {
        "accepted_ms": (times["accepted_ns"] - saved) / 1e6,
        "to_task_ms": (times["task_started_ns"] - saved) / 1e6,
        "connect_ms": (times["connected_ns"] - times["task_started_ns"]) / 1e6,
        "event_to_accepted_ms": (times["accepted_ns"] - times["connected_ns"]) / 1e6,
    }


_DISPATCH_DONE = re.compile(r"Task relaybridge\.dispatch_run\[[^\]]+\] succeeded in ([0-9.]+)s")


def celery_log_size(stack: Stack) -> dict[Path, int]:
    return {p.log_path: len(p.log_text()) for p in stack.deployment.processes if p.name == "celery"}


def dispatch_run_ms(since: dict[Path, int]) -> list[float]:
    """How long each ``dispatch_run`` took in the Celery worker (its own log, INFO)."""
    found = []
    for path, offset in since.items():
        text = path.read_text(errors="replace")[offset:]
        found += [float(seconds) * 1000 for seconds in _DISPATCH_DONE.findall(text)]
    return found


def _summary(samples: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    names = samples[0].keys() if samples else []
    return {name: distribution([s[name] for s in samples]) for name in names}


def _across(rounds: list[float]) -> dict[str, Any]:
    """The median of the rounds' figures, and their spread (max - min)."""
    return {
        "median": round(median(rounds), 2),
        "spread": round(max(rounds) - min(rounds), 2) if rounds else float("nan"),
        "rounds": [round(r, 2) for r in rounds],
    }


async def remote_accepted(
    stack: Stack, *, rtt_ms: float, rounds: int, per_round: int, pings: int
) -> dict[str, Any]:
    """The scenario: worker on the remote Relay, both ways interleaved, ``rounds`` rounds."""
    with remote_relay(stack, rtt_ms) as remote:
        await asyncio.to_thread(stack.restart_worker, stack.flush_ms, env=remote.worker_env())
        try:
            task_ids = await asyncio.to_thread(
                actions.create_tasks, 2 * (rounds * per_round + 1), "Remote"
            )
            ids = iter(task_ids)
            # One of each first: the Celery worker's first task imports and connects.
            await asyncio.to_thread(mention_once, next(ids))
            await asyncio.to_thread(per_connection_once, stack, remote, next(ids), -1)
            log_at = celery_log_size(stack)
            shared_rounds: list[list[dict[str, float]]] = []
            per_event_rounds: list[list[dict[str, float]]] = []
            rtt_rounds: list[list[float]] = []
            for r in range(rounds):
                rtt_rounds.append(await ping_rtt_ms(remote, pings))
                shared: list[dict[str, float]] = []
                per_event: list[dict[str, float]] = []
                for n in range(per_round):
                    shared.append(await asyncio.to_thread(mention_once, next(ids)))
                    per_event.append(
                        await asyncio.to_thread(
                            per_connection_once, stack, remote, next(ids), r * per_round + n
                        )
                    )
                shared_rounds.append(shared)
                per_event_rounds.append(per_event)
            await asyncio.to_thread(actions.close_connections)
            dispatch = dispatch_run_ms(log_at)
        finally:
            await asyncio.to_thread(stack.restart_worker, stack.flush_ms)

    def p50s(samples: list[list[dict[str, float]]], name: str) -> list[float]:
        return [distribution([s[name] for s in one])["p50"] for one in samples]

    shared_p50 = _across(p50s(shared_rounds, "accepted_ms"))
    per_event_p50 = _across(p50s(per_event_rounds, "accepted_ms"))
    rtt = _across([median(times) for times in rtt_rounds])
    return {
        "rtt_ms_configured": rtt_ms,
        "rounds": rounds,
        "per_round": per_round,
        "rtt_ms": rtt,
        "accepted_ms_shared_connection": shared_p50,
        "accepted_ms_connection_per_event": per_event_p50,
        # Where the time goes, over every round.
        "shared_connection": _summary([s for one in shared_rounds for s in one]),
        "connection_per_event": _summary([s for one in per_event_rounds for s in one]),
        # Inside the Celery hop of the shared connection: the dispatch_run task itself.
        "dispatch_run_ms": distribution(dispatch),
        "shared_vs_per_event": round(shared_p50["median"] / per_event_p50["median"], 3),
        "shared_minus_rtt_ms": round(shared_p50["median"] - rtt["median"], 2),
    }


async def scenario(
    stack: Stack, params: Any, figures: dict[str, float], spreads: dict[str, float]
) -> dict[str, Any]:
    """Run with ``python -m bench``'s parameters; fills in the figures and their spreads."""
    far = await remote_accepted(
        stack,
        rtt_ms=params.remote_rtt_ms,
        rounds=params.remote_rounds,
        per_round=params.remote_per_round,
        pings=params.remote_pings,
    )
    for key, found in (
        ("remote_rtt_ms", far["rtt_ms"]),
        ("remote_accepted_p50_ms", far["accepted_ms_shared_connection"]),
        ("remote_accepted_p50_ms_connection_per_event", far["accepted_ms_connection_per_event"]),
    ):
        figures[key] = found["median"]
        spreads[key] = found["spread"]
    return far
