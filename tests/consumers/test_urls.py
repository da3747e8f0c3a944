"""The stream socket's URL: a configurable path, and a thread value checked before any lookup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import path

from project.tasks.models import Task
from relaybridge.adapters import DefaultCommentAdapter, _load_adapter
from relaybridge.consumers import CLOSE_BAD_THREAD, ThreadStreamConsumer
from relaybridge.stream_urls import is_thread_value, stream_path, stream_route

from .conftest import cookie_for, socket
from .test_stream import refused_with

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


class LookupSpy(DefaultCommentAdapter):
    """Counts every lookup of a thread from a URL value."""

    asked: list[str] = []

    def thread_by_key(self, key: str) -> Any | None:
        LookupSpy.asked.append(key)
        return super().thread_by_key(key)


class KeyInUrl(DefaultCommentAdapter):
    """A custom adapter whose URL value has a character the URL pattern refuses."""

    def thread_url_value(self, thread: Any) -> str:
        return f"task:{thread.pk}"

    def thread_by_url(self, value: str) -> Any | None:
        return Task.objects.filter(pk=value.removeprefix("task:")).first()


@pytest.fixture
def spy(settings: Any) -> Iterator[list[str]]:
    settings.RELAYBRIDGE_ADAPTER = "tests.consumers.test_urls.LookupSpy"
    _load_adapter.cache_clear()
    LookupSpy.asked.clear()
    yield LookupSpy.asked
    _load_adapter.cache_clear()


@pytest.mark.parametrize(
    "value", ["..", ".hidden", "a b", "<script>", "x" * 129, "é", "1;drop", "%2F", "a/b", "a%00"]
)
async def test_a_malformed_thread_value_is_refused_before_any_lookup(
    redis_stack: str, spy: list[str], make_user: Callable[..., Any], value: str
) -> None:
    cookie = await cookie_for(make_user)
    communicator = socket(value, cookie)
    assert await refused_with(communicator) == CLOSE_BAD_THREAD
    await communicator.disconnect()
    assert spy == []


async def test_a_well_formed_value_is_looked_up(
    redis_stack: str, spy: list[str], task: Task, make_user: Callable[..., Any]
) -> None:
    cookie = await cookie_for(make_user)
    communicator = socket(task.pk, cookie)
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=2))["type"] == "snapshot"
    await communicator.disconnect()
    assert spy == [f"tasks.task.{task.pk}"]


def test_thread_values_are_strict() -> None:
    for good in ("42", "tasks.task.42", "0b8e1f6a-5d0b-4a3e-9e1c-2f4b7c3d9a10", "a_b~c", "x" * 128):
        assert is_thread_value(good), good
    for bad in ("", ".", "..", "a/b", "a b", "x" * 129, "tâche", "a\n"):
        assert not is_thread_value(bad), bad


async def test_the_socket_path_is_a_setting(
    redis_stack: str, settings: Any, task: Task, make_user: Callable[..., Any]
) -> None:
    settings.RELAYBRIDGE_STREAM_PATH = "/live/threads/"
    assert stream_route() == "live/threads/<path:thread>/"
    assert await _sync(stream_path, task) == f"/live/threads/{task.pk}/"
    # The route as relaybridge.routing builds it when the ASGI app starts.
    application = AuthMiddlewareStack(
        URLRouter([path(stream_route(), ThreadStreamConsumer.as_asgi())])
    )
    cookie = await cookie_for(make_user)
    communicator = WebsocketCommunicator(
        application,
        f"/live/threads/{task.pk}/",
        headers=[
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
            (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from(timeout=2))["type"] == "snapshot"
    await communicator.disconnect()


def test_the_default_path_keeps_todays_urls(db: None) -> None:
    task = Task.objects.create(title="t")
    assert stream_route() == "ws/tasks/<path:thread>/"
    assert stream_path(task) == f"/ws/tasks/{task.pk}/"


def test_an_adapter_whose_key_does_not_fit_the_url_is_told_what_to_do(
    db: None, settings: Any
) -> None:
    settings.RELAYBRIDGE_ADAPTER = "tests.consumers.test_urls.KeyInUrl"
    _load_adapter.cache_clear()
    try:
        task = Task.objects.create(title="t")
        with pytest.raises(ImproperlyConfigured, match="thread_url_value"):
            stream_path(task)
    finally:
        _load_adapter.cache_clear()


async def _sync(function: Callable[..., Any], *args: Any) -> Any:
    from asgiref.sync import sync_to_async

    return await sync_to_async(function)(*args)
