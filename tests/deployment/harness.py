"""A whole deployment in processes: PostgreSQL, Redis, Celery, relay workers, a Relay.

Each test gets its own PostgreSQL database (cloned from a template migrated once
per session), its own ``redis-server`` (started for it on a free port), and the
real processes of a production deployment started with one shared environment:

* the Relay emulator (``python -m relaybridge.emulator``), killable and restartable
  on the same port;
* one Celery worker (``celery -A project worker --pool solo``);
* one or more ``manage.py relay_worker`` processes;
* Daphne serving the project (``daphne project.asgi:application``) when a test
  needs the pages or the stream socket.

Mentions are made through the ORM in a subprocess (so ``post_save`` fires as on the
page) and outcomes are read straight from the database with psycopg. Every wait has
a deadline (:mod:`.waiting`); nothing relies on a sleep being long enough. The
services live in :mod:`.services`, the process plumbing in :mod:`.processes`.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
import redis
from django.core.cache.backends.redis import RedisCache
from psycopg.rows import class_row

from relaybridge.testing import TEST_APP_TOKEN, free_port
from relaybridge.worker.leader import DEFAULT_LOCK_KEY
from relaybridge.worker.status import STATUS_CACHE_KEY, WorkerStatus
from tests.redis_server import RedisServer

from .hosts import EXAMPLE, Host
from .processes import ROOT, LoggedEmulatorProcess, ManagedProcess, base_env
from .services import database_url
from .waiting import wait_until

#: Run states after which nothing more happens to a run.
ENDED = frozenset({"replied", "failed", "stopped"})
#: How long teardown lets the processes wind down after SIGTERM before it SIGKILLs them.
STOP_GRACE_S = 5.0


# -- rows --------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunRow:
    id: int
    run_id: uuid.UUID
    comment_id: int
    agent_id: str
    status: str
    event_id: str | None
    attempts: int
    error_code: str
    error_message: str
    partial_text: str
    reply_comment_id: int | None
    payload: dict[str, Any] | None

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    def brief(self) -> str:
        error = f" {self.error_code}: {self.error_message}" if self.error_code else ""
        return f"run {self.id} @{self.agent_id} comment {self.comment_id} {self.status}{error}"


@dataclass(frozen=True)
class CommentRow:
    id: int
    task_id: int
    author_id: int | None
    agent_id: str
    body: str


@dataclass(frozen=True)
class Mention:
    """What :meth:`Deployment.mention` created: a task and the comment on it."""

    task_id: int
    comment_id: int


@dataclass(frozen=True)
class CommandResult:
    returncode: int
    output: str


_RUN_COLUMNS = ", ".join(
    [
        "id",
        "run_id",
        "comment_id",
        "agent_id",
        "status",
        "event_id",
        "attempts",
        "error_code",
        "error_message",
        "partial_text",
        "reply_comment_id",
        "payload",
    ]
)


def mentions_from(output: str) -> list[Mention]:
    """The mentions an action printed as its last line (``[{"task_id", "comment_id"}, …]``)."""
    created = json.loads(output.strip().splitlines()[-1])
    return [Mention(task_id=c["task_id"], comment_id=c["comment_id"]) for c in created]


# -- the deployment ----------------------------------------------------------------------


class Deployment:
    """The processes of one test, sharing one database, one Redis and one Relay."""

    def __init__(
        self, *, database: str, redis_server: RedisServer, workdir: Path, host: Host = EXAMPLE
    ) -> None:
        self.host = host
        self.database = database
        self.redis_server = redis_server
        self.workdir = workdir
        #: Extra environment for every process started from now on (timing settings).
        self.settings: dict[str, str] = {}
        self.processes: list[ManagedProcess] = []
        self.emulator: LoggedEmulatorProcess | None = None
        self._db = psycopg.connect(database_url(database), autocommit=True)
        # The project's cache settings (no key prefix, version 1) on this test's Redis.
        self._cache = RedisCache(redis_server.url, {})
        self._redis = redis_server.client(decode_responses=True)

    # environment

    @property
    def database_url(self) -> str:
        return database_url(self.database)

    @property
    def redis(self) -> redis.Redis:
        return self._redis

    def env(self, **extra: str) -> dict[str, str]:
        relay: dict[str, str] = {"RELAY_APP_TOKEN": TEST_APP_TOKEN}
        if self.emulator is not None:
            relay["RELAY_URL"] = self.emulator.url
        return base_env(
            database_url=self.database_url,
            redis_url=self.redis_server.url,
            settings_module=self.host.settings_module,
            **{**relay, **self.settings, **extra},
        )

    # processes

    def start_emulator(
        self, *, token_delay_ms: float = 20, args: Sequence[str] = ()
    ) -> LoggedEmulatorProcess:
        if self.emulator is not None:
            raise RuntimeError("this deployment already has an emulator")
        emulator = LoggedEmulatorProcess(
            log_path=self.workdir / "emulator.log", token_delay_ms=token_delay_ms, args=args
        )
        self.emulator = emulator
        emulator.start()
        return emulator

    def start_process(
        self, name: str, cmd: Sequence[str], *, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        index = sum(1 for p in self.processes if p.name == name)
        log_path = self.workdir / f"{name}-{index}.log"
        process = ManagedProcess(name, cmd, env=env or self.env(), log_path=log_path)
        self.processes.append(process)
        return process

    def start_celery(
        self, timeout: float = 30.0, *, pool: str = "solo", concurrency: int = 1
    ) -> ManagedProcess:
        """One Celery worker, waited for until it consumes from the broker."""
        cmd = [sys.executable, "-m", "celery", "-A", self.host.celery_app, "worker"]
        cmd += ["--pool", pool, "--concurrency", str(concurrency), "-l", "info"]
        cmd += ["-n", f"relaybridge-test-{uuid.uuid4().hex[:8]}@%h"]
        # Gossip, mingle and heartbeats only talk to other workers; there are none,
        # and mingle alone waits a second or two for their answers at start-up.
        cmd += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
        # As the README's deployment section advises: one database connection kept
        # across a hundred tasks instead of a new one for every dispatch.
        env = self.env(**{"CELERY_DB_REUSE_MAX": "100", **self.settings})
        celery = self.start_process("celery", cmd, env=env)
        wait_until(
            lambda: re.search(r"@\S+ ready\.", celery.log_text()) or not celery.alive,
            timeout,
            "the Celery worker to be ready",
        )
        if not celery.alive:
            raise AssertionError(f"the Celery worker exited:\n{celery.log_text()}")
        return celery

    def start_relay_worker(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> ManagedProcess:
        cmd = [sys.executable, "manage.py", "relay_worker", *args]
        return self.start_process("relay_worker", cmd, env=self.env(**(env or {})))

    def start_daphne(
        self,
        timeout: float = 30.0,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> str:
        """Daphne serving the host's ASGI application on a free port; returns its base URL.

        ``env`` adds to the deployment's environment for Daphne alone (e.g.
        ``DJANGO_DEBUG="0"`` to serve the production error pages); ``port`` brings a
        killed Daphne back where the browser expects it."""
        port = port or free_port()
        cmd = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        daphne = self.start_process(
            "daphne", [*cmd, self.host.asgi_application], env=self.env(**(env or {}))
        )
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            if not daphne.alive:
                raise AssertionError(f"Daphne exited:\n{daphne.log_text()}")
            try:
                with urllib.request.urlopen(url + self.host.ready_path, timeout=2) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_until(answers, timeout, "Daphne to serve the sign-in page", interval=0.1)
        return url

    def start_site(self) -> str:
        """Every process started, the host's demo data seeded and the relay worker
        connected with the agents discovered; returns Daphne's base URL."""
        self.start_emulator(token_delay_ms=20)
        self.start_celery()
        self.start_relay_worker()
        url = self.start_daphne()
        seeded = self.manage(self.host.seed_command)
        assert seeded.returncode == 0, seeded.output

        def discovered() -> bool:
            status = self.worker_status()
            return status is not None and status.state == "connected" and bool(status.agents)

        wait_until(discovered, 30, "the relay worker to connect and discover the agents")
        return url

    def relay_workers(self) -> list[ManagedProcess]:
        return [p for p in self.processes if p.name == "relay_worker"]

    def manage(self, *args: str, timeout: float = 60.0) -> CommandResult:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=timeout,
        )
        return CommandResult(done.returncode, done.stdout)

    def relay_status(self) -> CommandResult:
        """``manage.py relay_status --exit-code``: 0 running, 1 no worker, 2 auth failure."""
        return self.manage("relay_status", "--exit-code")

    def worker_status(self) -> WorkerStatus | None:
        """The status record as ``relay_status`` reads it, without a process per look."""
        data = self._cache.get(STATUS_CACHE_KEY)
        return WorkerStatus.from_dict(data) if isinstance(data, dict) else None

    def lock_holder(self) -> str | None:
        value = self.redis.get(DEFAULT_LOCK_KEY)
        return None if value is None else str(value)

    def close(self) -> None:
        """Stop every process this deployment started, whatever state it is in."""
        errors: list[BaseException] = []
        # SIGTERM to all first, so that they wind down side by side within one grace.
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                process.request_stop()
        deadline = time.monotonic() + STOP_GRACE_S
        for process in self.processes:
            try:
                process.stop(deadline)
            except BaseException as exc:  # keep stopping the others
                errors.append(exc)
        if self.emulator is not None:
            self.emulator.terminate()
        self._db.close()
        self._redis.close()
        if errors:
            raise errors[0]

    def __enter__(self) -> Deployment:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # actions

    def run_module(self, module: str, *args: str, timeout: float = 60.0) -> str:
        """``python -m module args`` with this deployment's environment; its standard output.

        For actions that must run inside the project as a page would run them (an
        ORM save that fires ``post_save``, a task queued to the real broker).
        """
        done = subprocess.run(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=self.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"{module} {args[:1]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def mention(self, *bodies: str, title: str = "Q2 Roadmap Review") -> list[Mention]:
        """One new task per body, each with a comment by a person saying ``body``."""
        specs = [{"title": f"{title} #{n}", "body": body} for n, body in enumerate(bodies, 1)]
        output = self.run_module("tests.deployment.actions", "mention", json.dumps(specs))
        return mentions_from(output)

    # queries

    def runs(self, comment_ids: Iterable[int] | None = None) -> list[RunRow]:
        query = f"SELECT {_RUN_COLUMNS} FROM relaybridge_agentrun"
        params: list[Any] = []
        if comment_ids is not None:
            query += " WHERE comment_id = ANY(%s)"
            params.append(list(comment_ids))
        with self._db.cursor(row_factory=class_row(RunRow)) as cursor:
            return cursor.execute(query + " ORDER BY id", params).fetchall()

    def comments(self, task_id: int) -> list[CommentRow]:
        with self._db.cursor(row_factory=class_row(CommentRow)) as cursor:
            return cursor.execute(
                "SELECT id, task_id, author_id, agent_id, body FROM tasks_comment"
                " WHERE task_id = %s ORDER BY id",
                [task_id],
            ).fetchall()

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """Rows of a read-only query on this deployment's database."""
        with self._db.cursor() as cursor:
            return cursor.execute(sql, params).fetchall()

    def agent_comments(self, task_id: int) -> list[CommentRow]:
        return [c for c in self.comments(task_id) if c.agent_id]

    def wait_for_runs(
        self,
        mentions: Sequence[Mention],
        predicate: Callable[[list[RunRow]], bool],
        timeout: float,
        what: str,
    ) -> list[RunRow]:
        """Wait until the runs of ``mentions`` (one or more each) satisfy ``predicate``."""
        comment_ids = [m.comment_id for m in mentions]

        def check() -> list[RunRow] | None:
            rows = self.runs(comment_ids)
            return rows if rows and predicate(rows) else None

        try:
            return wait_until(check, timeout, what, interval=0.05)
        except AssertionError as exc:
            state = "\n".join(r.brief() for r in self.runs(comment_ids)) or "(no runs)"
            raise AssertionError(f"{exc}\nruns:\n{state}") from None

    def wait_until_ended(self, mentions: Sequence[Mention], timeout: float) -> list[RunRow]:
        return self.wait_for_runs(
            mentions, lambda rows: all(r.ended for r in rows), timeout, "every run to end"
        )

    # diagnostics

    def report(self, tail_lines: int = 60) -> str:
        """Run states and the end of every process log, for a failed test's report."""
        parts = []
        try:
            parts.append("runs:\n" + "\n".join(r.brief() for r in self.runs()))
        except psycopg.Error as exc:
            parts.append(f"runs: unreadable ({exc})")
        logs: list[tuple[str, str]] = [
            (f"{p.name} pid {p.pid} rc {p.returncode} ({p.log_path.name})", p.log_text())
            for p in self.processes
        ]
        if self.emulator is not None:
            logs.append(("emulator", self.emulator.log_text()))
        for title, text in logs:
            tail = "\n".join(text.splitlines()[-tail_lines:])
            parts.append(f"--- {title} ---\n{tail}")
        return "\n\n".join(parts)
