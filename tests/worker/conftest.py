"""Worker tests run against real Redis: the channel layer, the stream buffer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.stacks import eager_celery, use_redis_stack


@pytest.fixture
def redis_stack(settings: Any, redis_url: str) -> Iterator[str]:
    """Settings for a worker test: Redis channel layer (private prefix), eager Celery."""
    use_redis_stack(settings, redis_url)
    settings.RELAYBRIDGE_AGENTS = ["athena", "klyve", "offline", "broken", "stall", "slow"]
    with eager_celery():
        yield redis_url


def free_tcp_port() -> int:
    """A loopback port with nothing listening on it."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
