"""Fixtures for the Django-side tests.

Every test starts from the embedded default whatever the environment says (CI sets
REDIS_URL): the in-memory channel layer, a private local-memory cache, eager Celery.
Tests that exercise Redis configure it themselves from the ``redis_url`` fixture.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model

from project.celery import app as celery_app
from project.tasks.models import Comment, Task
from relaybridge.adapters import _load_adapter

OUTBOUND = "relaybridge.outbound"


@pytest.fixture(autouse=True)
def embedded_default(settings: Any) -> Iterator[None]:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"relaybridge-test-{uuid.uuid4()}",
        }
    }
    settings.RELAYBRIDGE_REDIS_URL = None
    conf = celery_app.conf
    saved = (conf.task_always_eager, conf.task_eager_propagates)
    conf.task_always_eager, conf.task_eager_propagates = True, True
    _load_adapter.cache_clear()
    yield
    conf.task_always_eager, conf.task_eager_propagates = saved
    _load_adapter.cache_clear()


def drain(channel: str = OUTBOUND, timeout: float = 0.2) -> list[dict[str, Any]]:
    """Every message waiting on ``channel`` of the default layer (call once per layer)."""
    layer = get_channel_layer()
    assert layer is not None

    async def receive_all() -> list[dict[str, Any]]:
        messages = []
        while True:
            try:
                messages.append(await asyncio.wait_for(layer.receive(channel), timeout))
            except TimeoutError:
                return messages

    return async_to_sync(receive_all)()


@pytest.fixture
def user(db: None) -> Any:
    return get_user_model().objects.create_user(
        "alice", password="pw", first_name="Alice", last_name="Ng"
    )


@pytest.fixture
def task(db: None) -> Task:
    return Task.objects.create(title="Q2 Roadmap Review", description="Plan the quarter.")


@pytest.fixture
def make_comment(task: Task, user: Any) -> Callable[..., Comment]:
    def make(body: str, **fields: Any) -> Comment:
        fields.setdefault("task", task)
        if "agent_id" in fields:
            fields.setdefault("author", None)
        else:
            fields.setdefault("author", user)
        return Comment.objects.create(body=body, **fields)

    return make
