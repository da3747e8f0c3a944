"""Fixtures shared by the whole suite.

A test that needs a real service asks for it through :func:`require_service`.
Without the service it is skipped with the reason; with
``RELAYBRIDGE_REQUIRE_SERVICES=1`` (CI) it fails instead, so a missing service
can never turn into a silent pass.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from urllib.parse import urlparse

import pytest

# The multi-process deployment (``deployment`` fixture) serves the worker, e2e and
# reliability tests alike.
pytest_plugins = ["tests.deployment.fixtures"]

REQUIRE_SERVICES = os.environ.get("RELAYBRIDGE_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def require_service(name: str, available: bool, how: str) -> None:
    if available:
        return
    message = f"{name} is not available ({how})"
    if REQUIRE_SERVICES:
        pytest.fail(f"{message}; RELAYBRIDGE_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(message)


def _tcp_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def redis_available(url: str = REDIS_URL) -> bool:
    parsed = urlparse(url)
    if not _tcp_answers(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        return False
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The URL of a real Redis server (skips, or fails in CI, without one)."""
    require_service("Redis", redis_available(), f"nothing answers PING at {REDIS_URL}")
    return REDIS_URL


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
