"""Fixtures shared by the whole suite.

A test that needs a real service asks for it through :func:`require_service`.
Without the service it is skipped with the reason; with
``RELAYBRIDGE_REQUIRE_SERVICES=1`` (CI) it fails instead, so a missing service
can never turn into a silent pass.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from tests.redis_server import RedisServer, redis_server_installed

# The multi-process deployment (``deployment`` fixture) serves the worker, e2e and
# reliability tests alike.
pytest_plugins = ["tests.deployment.fixtures"]

REQUIRE_SERVICES = os.environ.get("RELAYBRIDGE_REQUIRE_SERVICES") == "1"


#: Retry timers that eager Celery's backoff started (``runs._dispatch_later``).
_dispatch_timers: list[threading.Timer] = []


@pytest.fixture(scope="session", autouse=True)
def _record_dispatch_timers() -> Iterator[None]:
    from relaybridge.services import runs

    start_timer = runs._dispatch_later

    def recorded(run_id: str, countdown: float) -> threading.Timer:
        timer = start_timer(run_id, countdown)
        _dispatch_timers.append(timer)
        return timer

    runs._dispatch_later = recorded
    yield
    runs._dispatch_later = start_timer


@pytest.fixture
def dispatch_timers() -> list[threading.Timer]:
    """The retry timers this test started so far, oldest first.

    A test that reads the database while a retry fires joins its timer first: the
    timer thread has a connection of its own, and on SQLite's shared-cache test
    database a read beside its write fails ("database table is locked").
    """
    return _dispatch_timers


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """End the test's retry timers with the test.

    A timer still counting (a backoff of up to a minute) would otherwise fire in a
    later test, on tables that test owns, while it writes to them: on SQLite's
    shared-cache test database that is "database table is locked" in both. One that
    is running already is waited for, so that what it raises belongs to this test.
    """
    try:
        return (yield)
    finally:
        timers, _dispatch_timers[:] = list(_dispatch_timers), []
        for timer in timers:
            timer.cancel()
        for timer in timers:
            timer.join(timeout=30)
        if any(timer.is_alive() for timer in timers):
            pytest.fail(f"a retry timer of {item.nodeid} was still running after 30 s")


def require_service(name: str, available: bool, how: str) -> None:
    if available:
        return
    message = f"{name} is not available ({how})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; RELAYBRIDGE_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(message)


def require_redis_server() -> None:
    require_service("redis-server", redis_server_installed(), "the binary is not on PATH")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A Redis server this session started, shared by the tests that use key prefixes.

    The suite never writes to the Redis ``REDIS_URL`` names: that one may hold
    somebody's data.
    """
    require_redis_server()
    with RedisServer(tmp_path_factory.mktemp("redis") / "redis.log") as server:
        yield server


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the session's own Redis (skips, or fails in CI, without redis-server)."""
    return redis_server.url


@pytest.fixture
def user(db: None) -> Any:
    """A person who writes comments."""
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        "alice", password="pw", first_name="Alice", last_name="Ng"
    )


@pytest.fixture
def task(db: None) -> Any:
    """A task of the example project to comment on."""
    from project.tasks.models import Task

    return Task.objects.create(title="Q2 Roadmap Review", description="Plan the quarter.")
