"""The relay worker's database thread: what one mention costs it, trip by trip.

The relay worker makes every ORM call on one thread of its own
(:mod:`relaybridge.worker.database`), and a mention takes it there five times:

* ``intake``: the intake's read of the run it was handed (``run_with_facts``);
* ``sent``: the send's record, made before the event goes out (``mark_sent``);
* ``accepted``: Relay's ``accepted``, and the status pushed to the pages
  (``accepted_status``);
* ``first_token``: the first token's write (``record_first_tokens``; in the worker
  it is gathered with other runs' for a quarter of a second);
* ``reply``: the reply saved as a comment, and the message that shows it
  (``saved_reply``).

When the thread is busy, a mention's trips wait for the ones before them, so what a
mention costs it bounds the rate the worker keeps up with and, past that rate,
mention -> accepted (README, Performance). The stack's figures mix that with the
Celery hop, the broker and the machine's mood; this scenario measures the trips
alone: in a process of its own (``python -m bench.trips``), on a fresh PostgreSQL
database and a ``redis-server`` of its own, nothing else running, each trip called
as the thread calls it (:func:`~relaybridge.worker.database.as_one_trip`). Its runs
are never sent anywhere.

A round takes ``mentions`` new mentions (a task each, as the mention scenario has)
through the five trips in order and keeps each trip's p50 wall time, thread CPU time
and its queries; the figure, ``worker_db_ms_per_mention``, is the sum of the trips'
p50 wall times, the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The trips of one mention, in the order the worker makes them.
TRIPS = ("intake", "sent", "accepted", "first_token", "reply")
SETTINGS_MODULE = "bench.settings"
#: A reply the length of a short answer (Markdown, as agents write).
REPLY = "Here is **the summary** of this task:\n\n" + "- one point of it, and why\n" * 12


def measure(mentions: int, rounds: int) -> dict[str, Any]:
    """Take ``rounds`` x ``mentions`` mentions through their trips (Django set up)."""
    from django.contrib.auth import get_user_model

    from relaybridge.agents import store_directory

    store_directory([{"agent_id": "athena", "name": "Athena"}])
    person = get_user_model().objects.create_user(f"trips-{uuid.uuid4().hex[:8]}")
    done = [_round(person, mentions, number) for number in range(rounds)]
    totals = [one["wall_ms_per_mention"] for one in done]
    return {
        "mentions": mentions,
        "rounds": done,
        "trips": {
            name: {
                "wall_ms": statistics.median(one["trips"][name]["wall_ms"] for one in done),
                "cpu_ms": statistics.median(one["trips"][name]["cpu_ms"] for one in done),
                "queries": max(one["trips"][name]["queries"] for one in done),
            }
            for name in TRIPS
        },
        "wall_ms_per_mention": round(statistics.median(totals), 2),
        "wall_ms_per_mention_spread": round(max(totals) - min(totals), 2),
        "cpu_ms_per_mention": round(
            statistics.median(one["cpu_ms_per_mention"] for one in done), 2
        ),
    }


def _round(person: Any, mentions: int, number: int) -> dict[str, Any]:
    runs = [_sending_run(person, f"Trips {number}.{n}") for n in range(mentions)]
    samples: dict[str, list[tuple[float, float, int]]] = {name: [] for name in TRIPS}
    for run_id in runs:
        for name, call in _trips_of(run_id):
            samples[name].append(_timed(call))
    trips = {
        name: {
            "wall_ms": round(statistics.median(wall for wall, _cpu, _q in taken), 3),
            "cpu_ms": round(statistics.median(cpu for _wall, cpu, _q in taken), 3),
            "queries": max(queries for _wall, _cpu, queries in taken),
        }
        for name, taken in samples.items()
    }
    return {
        "trips": trips,
        "wall_ms_per_mention": round(sum(trip["wall_ms"] for trip in trips.values()), 2),
        "cpu_ms_per_mention": round(sum(trip["cpu_ms"] for trip in trips.values()), 2),
    }


def _sending_run(person: Any, title: str) -> str:
    """A person's mention of athena, claimed and ready to send, as ``dispatch_run``
    leaves it (created without ``dispatch_run`` queued: nothing else takes it)."""
    from project.tasks.models import Comment, Task
    from relaybridge import services

    task = Task.objects.create(title=title, description="A task to summarize.")
    comment = Comment.objects.create(task=task, author=person, body="Please summarize.")
    (run,) = services.create_runs(comment, ["athena"], requested_by=person)
    if services.prepare_dispatch(run.run_id) != "ready":
        raise RuntimeError(f"run {run.run_id} could not be claimed")
    return str(run.run_id)


def _trips_of(run_id: str) -> Iterator[tuple[str, Callable[[], object]]]:
    from django.utils import timezone

    from relaybridge import services
    from relaybridge.services.runs import RunRef
    from relaybridge.worker import database

    metadata = {"tokens_used": 120, "model": "bench", "latency_ms": 900}
    yield "intake", lambda: _expect(database.run_with_facts(run_id), "intake")
    yield "sent", lambda: _expect(database.mark_sent([run_id]), "sent")
    event_id = f"evt_{uuid.uuid4().hex}"
    yield "accepted", lambda: _expect(database.accepted_status(run_id, event_id, 0), "accepted")
    first_token: dict[RunRef, Any] = {run_id: timezone.now()}
    yield "first_token", lambda: _expect(services.record_first_tokens(first_token), "first token")
    yield "reply", lambda: _expect(database.saved_reply(run_id, REPLY, metadata), "reply")


def _expect(result: object, what: str) -> object:
    """A trip that did nothing would be measured as a fast one."""
    if not result:
        raise RuntimeError(f"the {what} trip changed nothing")
    return result


def _timed(call: Callable[[], object]) -> tuple[float, float, int]:
    """Wall ms, this thread's CPU ms and the queries of one trip."""
    from django.db import connection

    from relaybridge.worker.database import as_one_trip

    queries = 0

    def count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        wall, cpu = time.perf_counter(), time.thread_time()
        as_one_trip(call)()
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    return wall * 1000, cpu * 1000, queries


@contextmanager
def own_services() -> Iterator[None]:
    """A fresh, migrated database and a ``redis-server`` of its own; this process's
    environment pointed at them (before Django is set up)."""
    from tests.deployment.processes import base_env
    from tests.deployment.services import (
        create_database,
        database_url,
        drop_database,
        migrate,
        unique_database_name,
    )
    from tests.redis_server import RedisServer

    database = unique_database_name("trips")
    create_database(database)
    try:
        migrate(database)
        with (
            tempfile.TemporaryDirectory() as workdir,
            RedisServer(Path(workdir) / "redis.log") as redis_server,
        ):
            env = base_env(
                database_url=database_url(database),
                redis_url=redis_server.url,
                settings_module=SETTINGS_MODULE,
            )
            os.environ.update(env)
            try:
                yield
            finally:
                from django.db import connections

                connections.close_all()
    finally:
        drop_database(database)


def in_subprocess(mentions: int, rounds: int, timeout: float = 600.0) -> dict[str, Any]:
    """:func:`measure` in a process of its own (Django is set up once per process,
    and this process is the stack's client)."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.trips", f"--mentions={mentions}", f"--rounds={rounds}"],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=Path(__file__).resolve().parents[1],
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.trips failed ({done.returncode}):\n{done.stderr[-3000:]}")
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def table(found: dict[str, Any]) -> str:
    lines = [f"{'trip':12} {'wall ms':>8} {'cpu ms':>8} {'queries':>8}"]
    for name in TRIPS:
        trip = found["trips"][name]
        lines.append(f"{name:12} {trip['wall_ms']:8.2f} {trip['cpu_ms']:8.2f} {trip['queries']:8d}")
    lines.append(
        f"{'per mention':12} {found['wall_ms_per_mention']:8.2f} {found['cpu_ms_per_mention']:8.2f}"
        f"   (spread {found['wall_ms_per_mention_spread']:.2f} ms over"
        f" {len(found['rounds'])} rounds of {found['mentions']})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.trips", description=__doc__)
    parser.add_argument("--mentions", type=int, default=200, help="mentions per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--table", action="store_true", help="print a table before the JSON")
    args = parser.parse_args(argv)
    if args.mentions < 1 or args.rounds < 1:
        parser.error("--mentions and --rounds must be at least 1")
    with own_services():
        import django

        django.setup()
        found = measure(args.mentions, args.rounds)
    if args.table:
        print(table(found))
    print(json.dumps(found))


if __name__ == "__main__":
    main()
