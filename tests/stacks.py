"""The two shapes a test's settings take, shared by every test package.

* the embedded default: the in-memory channel layer, no Redis buffer;
* the Redis stack: real ``channels_redis`` layers under a private prefix, as the
  example project has them (the intake on the list-based layer, the pages' streams
  on the Pub/Sub layer), and the Redis stream buffer.

Both use a private local-memory cache (agent directory, worker status) and run
Celery eagerly, as the embedded default does.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from channels.layers import BaseChannelLayer

from project.celery import app as celery_app
from relaybridge import streams
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
    settings.RELAYBRIDGE_STREAM_LAYER = "default"
    _private_cache(settings)
    settings.RELAYBRIDGE_REDIS_URL = None


def use_redis_stack(settings: Any, redis_url: str) -> None:
    config = {
        "hosts": [{"address": redis_url, "socket_timeout": 30}],
        "prefix": f"relaybridge-test-{uuid.uuid4().hex}",
    }
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": config},
        "streams": {"BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer", "CONFIG": config},
    }
    settings.RELAYBRIDGE_STREAM_LAYER = "streams"
    _private_cache(settings)
    settings.RELAYBRIDGE_REDIS_URL = redis_url


def stream_layer() -> BaseChannelLayer:
    """The layer pages listen on and the relay worker pushes to."""
    layer = streams.stream_layer()
    assert layer is not None
    return layer


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
