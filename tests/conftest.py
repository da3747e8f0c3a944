"""Fixtures shared by the whole suite.

A test that needs a real service asks for it through :func:`require_service`.
Without the service it is skipped with the reason; with
``RELAYBRIDGE_REQUIRE_SERVICES=1`` (CI) it fails instead, so a missing service
can never turn into a silent pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.redis_server import RedisServer, redis_server_installed

# The multi-process deployment (``deployment`` fixture) serves the worker, e2e and
# reliability tests alike.
pytest_plugins = ["tests.deployment.fixtures"]

REQUIRE_SERVICES = os.environ.get("RELAYBRIDGE_REQUIRE_SERVICES") == "1"


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
