"""Fixtures for the security tests: the relay stack on a real Redis, and per-task access
(:mod:`tests.security.adapters`) with two people who each own one task."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from project.tasks.models import Task
from relaybridge.adapters import _load_adapter
from tests.stacks import eager_celery, use_embedded_default, use_redis_stack

from .adapters import OWN_TASKS


@pytest.fixture
def redis_stack(settings: Any, redis_url: str) -> Iterator[str]:
    """Redis channel layer (private prefix) and stream buffer, eager Celery."""
    use_redis_stack(settings, redis_url)
    settings.RELAYBRIDGE_AGENTS = ["athena", "klyve", "stall"]
    with eager_celery():
        yield redis_url


@pytest.fixture
def own_tasks(settings: Any) -> Iterator[None]:
    use_embedded_default(settings)
    settings.RELAYBRIDGE_ADAPTER = OWN_TASKS
    settings.RELAYBRIDGE_AGENTS = ["athena", "klyve"]
    _load_adapter.cache_clear()
    with eager_celery():
        yield
    _load_adapter.cache_clear()


@pytest.fixture
def people(db: None) -> dict[str, Any]:
    from django.contrib.auth import get_user_model

    make = get_user_model().objects.create_user
    return {"alice": make("alice", password="pw"), "mallory": make("mallory", password="pw")}


@pytest.fixture
def tasks(db: None) -> dict[str, Task]:
    return {
        name: Task.objects.create(title=f"{name}'s task", description=f"owner:{name}")
        for name in ("alice", "mallory")
    }
