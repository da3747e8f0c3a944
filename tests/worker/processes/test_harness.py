"""The harness itself: databases, Redis servers, the emulator, Celery and mentions.

These run without a relay worker, so a broken harness shows up here rather than
as a mysterious failure of a worker test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import pytest
from websockets.asyncio.client import connect

from relaybridge.testing import TEST_APP_TOKEN
from tests.deployment.harness import Deployment
from tests.deployment.waiting import wait_until
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]


def test_each_test_gets_a_migrated_empty_database_and_a_redis_server_of_its_own(
    deployment: Deployment, redis_server: RedisServer
) -> None:
    assert deployment.runs() == []
    assert deployment.redis.dbsize() == 0
    # Not the session's shared server, and nothing in the environment names another.
    assert deployment.redis_server.port != redis_server.port
    assert deployment.env()["REDIS_URL"] == deployment.redis_server.url
    process = deployment.redis_server.process
    assert process is not None
    assert deployment.redis.info("server")["process_id"] == process.pid


async def _open_app_connection(url: str) -> None:
    headers = {"Authorization": f"Bearer {TEST_APP_TOKEN}"}
    async with connect(url, additional_headers=headers) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "pong"


def test_the_emulator_logs_to_a_file_and_restarts_on_the_same_port(
    deployment: Deployment,
) -> None:
    emulator = deployment.start_emulator()
    port = emulator.port
    asyncio.run(_open_app_connection(emulator.url))
    wait_until(lambda: emulator.app_connections() == 1, 5, "the emulator to log the connection")

    emulator.kill()
    assert not emulator.running
    emulator.start()
    assert emulator.port == port
    asyncio.run(_open_app_connection(emulator.url))
    wait_until(lambda: emulator.app_connections() == 2, 5, "the restarted emulator's log line")


def test_a_mention_is_dispatched_by_celery_to_the_relay_workers_intake(
    deployment: Deployment,
) -> None:
    deployment.start_emulator()
    deployment.start_celery()
    [mention] = deployment.mention("@athena summarize this task")

    [run] = deployment.wait_for_runs(
        [mention], lambda rows: rows[0].status == "sending", 20, "Celery to claim the run"
    )
    assert run.agent_id == "athena"
    assert run.payload is not None
    assert run.payload["message"] == "@athena summarize this task"
    # With no relay worker listening, the hand-off waits on the intake channel.
    wait_until(
        lambda: deployment.redis.keys("*relaybridge.outbound*"),
        5,
        "the run id on the relay worker's intake channel",
    )
    assert deployment.comments(mention.task_id)[0].body == "@athena summarize this task"


def test_close_kills_every_process_group(deployment: Deployment) -> None:
    # A child that ignores SIGTERM and forks a grandchild: only SIGKILL to the
    # whole group ends both.
    script = (
        "import os, signal, subprocess, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    process = deployment.start_process("stubborn", [sys.executable, "-c", script])
    grandchild = int(wait_until(lambda: process.log_text().strip(), 10, "the grandchild's pid"))
    process.send_signal(signal.SIGTERM)
    assert process.alive

    deployment.close()

    assert not process.alive
    assert process.returncode == -signal.SIGKILL
    wait_until(lambda: not _pid_exists(grandchild), 5, "the grandchild to be gone")


def _pid_exists(pid: int) -> bool:
    # The grandchild is reparented to init, which reaps it; a zombie counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
