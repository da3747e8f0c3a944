"""Every side task of the worker is watched: one that dies is logged loudly and
started again, and a connection loop that dies stops the worker with an error."""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any

import pytest
from django.db import OperationalError

from relaybridge import batching, services
from relaybridge.models import AgentRun
from relaybridge.testing import running_emulator
from relaybridge.worker import bridge, database, intake
from relaybridge.worker.bridge import BridgeWorker, SideTaskDied, WorkerOptions
from relaybridge.worker.connection import RelayConnection
from relaybridge.worker.leader import LocalLeaderLock

from .stack import post_mention, relay_stack, run_status, runs_for, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]


class FailsOnce:
    """Calls through to ``real``, except the first call, which raises ``error``."""

    def __init__(self, real: Any, error: Exception) -> None:
        self.real, self.error, self.calls = real, error, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise self.error
        return self.real(*args, **kwargs)


class Counted:
    """Calls through to ``real`` and counts the calls that returned."""

    def __init__(self, real: Any) -> None:
        self.real, self.returned = real, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        result = self.real(*args, **kwargs)
        self.returned += 1
        return result


@pytest.fixture(autouse=True)
def _quick_restarts(monkeypatch: Any, caplog: Any) -> None:
    monkeypatch.setattr(bridge, "RESTART_DELAY_S", 0.05)
    caplog.set_level(logging.INFO, logger="relaybridge.worker")


async def test_an_intake_killed_by_a_database_error_is_restarted(
    redis_stack: str, monkeypatch: Any, caplog: Any
) -> None:
    broken = FailsOnce(services.get_run, OperationalError("the database went away"))
    monkeypatch.setattr(services, "get_run", broken)
    # The sweep's first pass runs at start; its next one comes too late to matter, so
    # once that first pass is over only the intake brings mentions in (and meets the
    # error).
    first_sweep = Counted(database.overdue_run_ids)
    monkeypatch.setattr(intake, "overdue_run_ids", first_sweep)
    async with relay_stack(redis_stack, sweep_interval=120.0):
        await wait_for(lambda: first_sweep.returned >= 1, what="the sweep's first pass")
        await post_mention("@athena the first mention meets the error")
        await wait_for(lambda: "the intake died" in caplog.text, what="the intake's death")
        assert "the database went away" in caplog.text  # with its traceback
        comment = await post_mention("@athena and the next one gets through")
        [run] = await runs_for(comment)
        await wait_for(lambda: run_status(run.run_id) == AgentRun.Status.REPLIED, what="reply")


@pytest.mark.parametrize(
    ("name", "query"), [("sweep", "sending_run_ids"), ("watchdog", "stalled_run_ids")]
)
async def test_a_periodic_task_that_dies_is_restarted(
    redis_stack: str, monkeypatch: Any, caplog: Any, name: str, query: str
) -> None:
    broken = FailsOnce(getattr(intake, query), OperationalError("server closed the connection"))
    monkeypatch.setattr(intake, query, broken)
    async with relay_stack(redis_stack, sweep_interval=0.1, stall_timeout=0.4):
        await wait_for(lambda: broken.calls >= 3, what=f"the {name} running again")
    assert f"the {name} died; restarting it" in caplog.text


async def test_a_connection_loop_that_dies_stops_the_worker_with_an_error(
    monkeypatch: Any, caplog: Any
) -> None:
    async def broken(self: RelayConnection, stop: Any) -> None:
        raise RuntimeError("a bug in the connection loop")

    monkeypatch.setattr(RelayConnection, "_connect_until", broken)
    async with running_emulator() as relay:
        options = WorkerOptions(url=relay.url, token=relay.app_token)
        worker = BridgeWorker(options, lock=LocalLeaderLock())
        with pytest.raises(SideTaskDied):
            await worker.run()
    assert "the Relay connection loop died" in caplog.text
    assert "a bug in the connection loop" in caplog.text


def test_relay_worker_exits_non_zero_when_the_worker_stopped_on_a_dead_part(
    monkeypatch: Any,
) -> None:
    from django.core.management import CommandError, call_command

    from relaybridge.worker.launch import WorkerRun

    async def died(self: WorkerRun) -> None:
        raise SideTaskDied("the Relay connection loop died")

    monkeypatch.setattr(WorkerRun, "run", died)
    switch_interval = sys.getswitchinterval()
    with pytest.raises(CommandError, match="connection loop died"):
        call_command("relay_worker")
    # The worker's tuning of the interpreter is undone for a caller that goes on.
    assert sys.getswitchinterval() == switch_interval
    assert gc.get_freeze_count() == 0


async def test_a_status_record_task_that_dies_is_restarted(
    redis_stack: str, monkeypatch: Any, caplog: Any
) -> None:
    from relaybridge.worker.status import read_status

    real_wait = batching.wait_event  # what bridge imported, and calls by that name
    calls = 0

    async def fails_once(event: Any, seconds: float | None) -> bool:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the cache client broke")
        return await real_wait(event, seconds)

    monkeypatch.setattr(bridge, "wait_event", fails_once)
    async with relay_stack(redis_stack):
        await wait_for(lambda: "the status record died" in caplog.text, what="its death")
        await wait_for(
            lambda: (found := read_status()) is not None and found.state == "connected",
            what="the record written again",
        )
