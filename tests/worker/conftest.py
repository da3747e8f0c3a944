"""Worker tests run against real Redis: the channel layer, the stream buffer."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from project.celery import app as celery_app
from relaybridge.adapters import _load_adapter


@pytest.fixture
def redis_stack(settings: Any, redis_url: str) -> Iterator[str]:
    """Settings for a worker test: Redis channel layer (private prefix), eager Celery."""
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_url], "prefix": f"relaybridge-test-{uuid.uuid4().hex}"},
        }
    }
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"relaybridge-worker-test-{uuid.uuid4()}",
        }
    }
    settings.RELAYBRIDGE_REDIS_URL = redis_url
    settings.RELAYBRIDGE_AGENTS = ["athena", "klyve", "offline", "broken", "stall", "slow"]
    # Tasks called from the worker's threads resolve the default app, not this one's.
    celery_app.set_default()
    celery_app.set_current()
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager, conf.task_eager_propagates = True, True
    _load_adapter.cache_clear()
    yield redis_url
    conf.task_always_eager, conf.task_eager_propagates = saved
    _load_adapter.cache_clear()


def free_tcp_port() -> int:
    """A loopback port with nothing listening on it."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
