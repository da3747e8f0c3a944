"""Fixtures for the Django-side tests.

Every test starts from the embedded default whatever the environment says (CI sets
REDIS_URL): the in-memory channel layer, a private local-memory cache, eager Celery.
Tests that exercise Redis configure it themselves from the ``redis_url`` fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from project.tasks.models import Comment, Task
from tests.stacks import eager_celery, use_embedded_default

OUTBOUND = "relaybridge.outbound"


@pytest.fixture(autouse=True)
def embedded_default(settings: Any) -> Iterator[None]:
    use_embedded_default(settings)
    with eager_celery():
        yield


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
def make_comment(task: Task, user: Any) -> Callable[..., Comment]:
    def make(body: str, **fields: Any) -> Comment:
        fields.setdefault("task", task)
        if "agent_id" in fields:
            fields.setdefault("author", None)
        else:
            fields.setdefault("author", user)
        return Comment.objects.create(body=body, **fields)

    return make
