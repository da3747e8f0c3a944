"""The benchmark stack: the test deployment's real processes, started once per run.

PostgreSQL (a fresh database, migrated), a ``redis-server`` of its own on a free
port (never the Redis ``REDIS_URL`` names, which may hold somebody's data), the Relay emulator
with the load agent and no plan limits, one Celery worker, one relay worker and
Daphne, all on 127.0.0.1 (:mod:`tests.deployment`). The driver process itself is
set up as a Django client of the same database and broker, so it can create tasks
and comments through the ORM exactly as a page's form would.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from relaybridge.emulator.load import LOAD_AGENT_ID
from relaybridge.testing import TEST_APP_ID, TEST_APP_TOKEN
from tests.deployment.harness import Deployment
from tests.deployment.processes import LoggedEmulatorProcess, ManagedProcess
from tests.deployment.services import (
    create_database,
    drop_database,
    migrate,
    unique_database_name,
)
from tests.deployment.waiting import wait_until
from tests.redis_server import RedisServer

SETTINGS_MODULE = "bench.settings"
#: The baseline clients' own app on the emulator, so their frames never reach the worker.
BASELINE_APP_TOKEN = "rlk_benchbase_0000000000000000"
BASELINE_APP_ID = "benchbase"
DEMO_LOGIN = ("demo", "demo")


@dataclass
class Stack:
    deployment: Deployment
    emulator: LoggedEmulatorProcess
    worker: ManagedProcess
    daphne_url: str
    flush_ms: int

    @property
    def relay_url(self) -> str:
        return self.emulator.url

    def pids(self) -> dict[str, int]:
        """The stack's processes by role (the current relay worker only), and this driver.

        The first of each name: a scenario that starts a Daphne of its own (the
        browser's) must not stand in for the one serving the streams' pages.
        """
        found: dict[str, int] = {}
        for process in self.deployment.processes:
            if process.alive:
                found.setdefault(process.name, process.pid)
        found["relay_worker"] = self.worker.pid
        if self.emulator.pid is not None:
            found["emulator"] = self.emulator.pid
        found["driver"] = os.getpid()
        return found

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system) each process has used so far, from ``/proc``."""
        ticks = os.sysconf("SC_CLK_TCK")
        used = {}
        for role, pid in self.pids().items():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            used[role] = (int(fields[11]) + int(fields[12])) / ticks
        return used

    def restart_worker(
        self,
        flush_ms: int,
        timeout: float = 60.0,
        *,
        plan: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """Stop the relay worker gracefully and start one with another flush interval
        (and, if given, paced to another plan than the benchmark's unlimited one, or
        with more environment: another Relay)."""
        old = self.worker
        old.send_signal(signal.SIGTERM)
        old.wait(timeout)
        self.worker = start_worker(self.deployment, flush_ms, timeout, plan=plan, env=env)
        self.flush_ms = flush_ms


def start_worker(
    deployment: Deployment,
    flush_ms: int,
    timeout: float = 60.0,
    *,
    plan: str | None = None,
    env: Mapping[str, str] | None = None,
) -> ManagedProcess:
    env = {**(env or {}), "RELAYBRIDGE_STREAM_FLUSH_MS": str(flush_ms)}
    if plan is not None:
        env["RELAYBRIDGE_BENCH_PLAN"] = plan
    worker = deployment.start_relay_worker("--lock-ttl", "2", env=env)

    def connected() -> bool:
        if not worker.alive:
            raise RuntimeError(f"the relay worker exited:\n{worker.log_text()}")
        status = deployment.worker_status()
        return status is not None and status.pid == worker.pid and status.state == "connected"

    wait_until(connected, timeout, "the relay worker to connect", interval=0.05)
    return worker


def setup_django(deployment: Deployment) -> None:
    """Make this process a Django client of the stack (same database, Redis, broker)."""
    shared = {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "DJANGO_SECRET_KEY"}
    for key, value in deployment.env().items():
        if key in shared or "BENCH" in key:
            os.environ[key] = value
    import django

    django.setup()
    from django.db import connections

    # Without the example project's pool here: the scenarios' worker threads
    # (asyncio.to_thread) each keep a connection for the whole run, and more threads
    # than the pool holds would wait for one.
    connections["default"].settings_dict.get("OPTIONS", {}).pop("pool", None)


@contextmanager
def running_stack(
    workdir: Path, *, flush_ms: int, channel_layer: str = "project"
) -> Iterator[Stack]:
    """Start everything; ``channel_layer`` is ``project`` (the example project's
    layers) or ``redis`` (pages' streams on the list-based layer too)."""
    workdir.mkdir(parents=True, exist_ok=True)
    database = unique_database_name("bench")
    create_database(database)
    try:
        migrate(database)
        with (
            RedisServer(workdir / "redis.log") as redis_server,
            Deployment(database=database, redis_server=redis_server, workdir=workdir) as deployed,
        ):
            yield start_stack(deployed, flush_ms=flush_ms, channel_layer=channel_layer)
    finally:
        drop_database(database)


def start_stack(deployment: Deployment, *, flush_ms: int, channel_layer: str) -> Stack:
    deployment.settings["DJANGO_SETTINGS_MODULE"] = SETTINGS_MODULE
    deployment.settings["RELAYBRIDGE_BENCH_CHANNEL_LAYER"] = channel_layer
    emulator = LoggedEmulatorProcess(
        log_path=deployment.workdir / "emulator.log",
        log_level="WARNING",
        app_tokens={TEST_APP_TOKEN: TEST_APP_ID, BASELINE_APP_TOKEN: BASELINE_APP_ID},
        args=["--plan", "unlimited", "--load-agent", "--agents", LOAD_AGENT_ID],
    )
    deployment.emulator = emulator
    emulator.start()
    deployment.start_celery()
    worker = start_worker(deployment, flush_ms)
    daphne_url = deployment.start_daphne()
    seeded = deployment.manage("seed_demo")
    if seeded.returncode != 0:
        raise RuntimeError(f"seed_demo failed:\n{seeded.output}")
    setup_django(deployment)
    return Stack(deployment, emulator, worker, daphne_url, flush_ms)
