"""Fixtures for the browser-stream tests: a real Redis layer, users, runs, sockets.

The consumer runs inside the real ASGI application (origin check, session auth,
URL router), so a socket is authenticated the way a browser's is: by the session
cookie of a logged-in user.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client

from project.asgi import application
from project.tasks.models import Comment, Task
from relaybridge import streams
from relaybridge.adapters import _load_adapter, get_adapter
from relaybridge.consumers import ThreadStreamConsumer
from relaybridge.models import AgentRun
from tests.stacks import eager_celery, stream_layer, use_embedded_default, use_redis_stack

STAFF_ONLY = "tests.consumers.adapters.StaffOnlyAdapter"


@pytest.fixture
def redis_stack(settings: Any, redis_url: str) -> Iterator[str]:
    """Redis channel layer (private prefix) and stream buffer, eager Celery."""
    use_redis_stack(settings, redis_url)
    settings.RELAYBRIDGE_AGENTS = ["athena", "klyve"]
    with eager_celery():
        yield redis_url


@pytest.fixture
def embedded(settings: Any) -> Iterator[None]:
    """The embedded default: in-memory layer and buffer, eager Celery."""
    use_embedded_default(settings)
    settings.RELAYBRIDGE_AGENTS = ["athena", "klyve"]
    with eager_celery():
        yield


@pytest.fixture
def staff_only(settings: Any) -> Iterator[None]:
    settings.RELAYBRIDGE_ADAPTER = STAFF_ONLY
    _load_adapter.cache_clear()
    yield
    _load_adapter.cache_clear()


@pytest.fixture
def make_user(db: None) -> Callable[..., Any]:
    def make(username: str = "alice", **fields: Any) -> Any:
        return get_user_model().objects.create_user(username, password="pw", **fields)

    return make


@pytest.fixture
def task(db: None) -> Task:
    return Task.objects.create(title="Q2 Roadmap Review")


def create_run(task: Task, status: str = AgentRun.Status.STREAMING, **fields: Any) -> AgentRun:
    """A run of @athena in ``status`` on ``task``, under a comment without mentions
    (so no receiver creates runs of its own)."""
    comment = Comment.objects.create(task=task, body="what do you think?")
    adapter = get_adapter()
    return AgentRun.objects.create(
        comment=comment,
        agent_id="athena",
        thread_id=adapter.thread_id(task),
        thread_key=adapter.thread_key(task),
        status=status,
        **fields,
    )


@pytest.fixture
def make_run(task: Task) -> Callable[..., AgentRun]:
    """:func:`create_run` on the test's task."""

    def make(status: str = AgentRun.Status.STREAMING, **fields: Any) -> AgentRun:
        return create_run(task, status, **fields)

    return make


def session_cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


def socket(task_ref: Any, cookie: str | None = None) -> WebsocketCommunicator:
    """A browser-like socket on ``/ws/tasks/<task_ref>/`` through the real ASGI app."""
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    if cookie:
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/tasks/{task_ref}/", headers=headers)


async def cookie_for(make_user: Callable[..., Any], username: str = "alice", **fields: Any) -> str:
    """Create a user and log them in (from async code); returns the session cookie."""
    return await sync_to_async(lambda: session_cookie(make_user(username, **fields)))()


#: The run id of the marker :func:`received_before_marker` pushes (no run has it).
MARKER_RUN = "marker-run"


async def received_before_marker(
    communicator: WebsocketCommunicator, group: str
) -> list[dict[str, Any]]:
    """What the socket receives before a marker pushed to ``group`` now.

    Pushes to one group reach a socket in the order they were sent, so anything
    pushed earlier that the socket forwards arrives before the marker. Waiting for
    the marker proves an earlier push was dropped, where waiting for silence only
    proves it was slow.
    """
    marker = streams.error_event(MARKER_RUN, "marker", "marker", None)
    await stream_layer().group_send(group, streams.group_message(marker))
    received: list[dict[str, Any]] = []
    while (message := await communicator.receive_json_from(timeout=5)) != marker:
        received.append(message)
    return received


def watching(task: Task, user: Any) -> tuple[ThreadStreamConsumer, list[dict[str, Any]]]:
    """A socket's consumer watching ``task`` for ``user``, and what it sends."""
    consumer = ThreadStreamConsumer()
    consumer.runs, consumer.control = {}, {}
    consumer.thread_key = get_adapter().thread_key(task)
    consumer.scope = {"user": user}
    sent: list[dict[str, Any]] = []

    async def send_json(content: dict[str, Any], close: bool = False) -> None:
        sent.append(content)

    consumer.send_json = send_json
    return consumer, sent
