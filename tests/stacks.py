"""The two shapes a test's settings take, shared by every test package.

* the embedded default: the in-memory channel layer, no Redis buffer;
* the Redis stack: a real ``channels_redis`` layer under a private prefix and the
  Redis stream buffer.

Both use a private local-memory cache (agent directory, worker status) and run
Celery eagerly, as the embedded default does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from project.celery import app as celery_app
from relaybridge.adapters import _load_adapter


def _private_cache(settings: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"relaybridge-test-{uuid.uuid4()}",
        }
    }


def use_embedded_default(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    _private_cache(settings)
    settings.RELAYBRIDGE_REDIS_URL = None


def use_redis_stack(settings: Any, redis_url: str) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [{"address": redis_url, "socket_timeout": 30}],
                "prefix": f"relaybridge-test-{uuid.uuid4().hex}",
            },
        }
    }
    _private_cache(settings)
    settings.RELAYBRIDGE_REDIS_URL = redis_url


@contextmanager
def eager_celery() -> Iterator[None]:
    """Run tasks in-process, through the project's app, for the block."""
    # Tasks called from other threads resolve the default app, not the current one.
    celery_app.set_default()
    celery_app.set_current()
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager, conf.task_eager_propagates = True, True
    _load_adapter.cache_clear()
    try:
        yield
    finally:
        conf.task_always_eager, conf.task_eager_propagates = saved
        _load_adapter.cache_clear()
