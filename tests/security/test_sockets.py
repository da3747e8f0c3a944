"""The pages' stream sockets kept in bounds: for how long, how many, from where, with what.

Every socket here goes through the example project's real ASGI application (origin
check, session and auth middleware, URL router) with a real session cookie, on the
embedded default and on the Redis stack (channel layers and the Django cache on a
private Redis). A close is waited for with a deadline; a socket that must stay open
proves it by answering a ping after the event that would have closed it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as redis
from asgiref.sync import sync_to_async
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse

from project.asgi import application
from project.tasks.models import Task
from relaybridge.adapters import _load_adapter
from relaybridge.checks import check_setting_values
from relaybridge.conf import DEFAULTS
from relaybridge.consumers import (
    CLOSE_BAD_ORIGIN,
    CLOSE_BAD_THREAD,
    CLOSE_FORBIDDEN,
    CLOSE_SESSION_ENDED,
    CLOSE_TOO_MANY_SOCKETS,
)
from relaybridge.routing import websocket_urlpatterns
from relaybridge.socket_guard import slot_lease
from tests.stacks import eager_celery, use_embedded_default, use_redis_stack

from .adapters import OWN_TASKS

pytestmark = pytest.mark.django_db(transaction=True)

#: Seconds a test waits for a close or an answer before it fails.
DEADLINE = 5.0


@pytest.fixture(params=["embedded", pytest.param("redis", marks=pytest.mark.redis)])
def stack(request: pytest.FixtureRequest, settings: Any) -> Iterator[str]:
    """The embedded default, or the Redis stack with the Django cache on Redis too (the
    cache that counts a person's sockets across Daphne processes)."""
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        use_redis_stack(settings, redis_url)
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": f"relaybridge-test-{uuid.uuid4().hex}",
            }
        }
    else:
        use_embedded_default(settings)
    settings.RELAYBRIDGE_ADAPTER = OWN_TASKS
    _load_adapter.cache_clear()
    with eager_celery():
        yield request.param
    _load_adapter.cache_clear()


@pytest.fixture
def alice(db: None) -> Any:
    return get_user_model().objects.create_user("alice", password="pw")


@pytest.fixture
def task(db: None) -> Task:
    return Task.objects.create(title="alice's task", description="owner:alice")


def _sign_in(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


async def sign_in(user: Any) -> str:
    """A new session of ``user``; returns its cookie."""
    return await sync_to_async(_sign_in)(user)


def _sign_out(cookie: str) -> None:
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = cookie
    response = client.post(reverse("tasks:logout"))
    assert response.status_code == 302


def socket(
    path: str,
    cookie: str | None = None,
    *,
    origin: bytes | None = b"http://localhost",
    host: bytes = b"localhost",
    app: Any = application,
) -> WebsocketCommunicator:
    headers = [(b"host", host)]
    if origin is not None:
        headers.append((b"origin", origin))
    if cookie:
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()))
    return WebsocketCommunicator(app, path, headers=headers)


async def opened(communicator: WebsocketCommunicator) -> None:
    """Connect and read the snapshot: the socket was accepted and stays open."""
    connected, code = await communicator.connect(timeout=DEADLINE)
    assert connected, code
    first = await communicator.receive_json_from(timeout=DEADLINE)
    assert first["type"] == "snapshot", first


async def refused(communicator: WebsocketCommunicator) -> int:
    """The code of a socket accepted and closed at once (as the page needs to see it)."""
    connected, code = await communicator.connect(timeout=DEADLINE)
    assert connected, f"the handshake failed ({code}) instead of a close with a code"
    return await closed(communicator)


async def closed(communicator: WebsocketCommunicator) -> int:
    """Wait (with the deadline) for the server to close the socket; its close code.
    Messages sent before the close are skipped."""
    while True:
        message = await communicator.receive_output(timeout=DEADLINE)
        if message["type"] == "websocket.close":
            return int(message["code"])
        assert message["type"] == "websocket.send", message


async def answers(communicator: WebsocketCommunicator) -> None:
    """The socket is open and reads what the page sends: a ping gets its pong."""
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=DEADLINE) == {"type": "pong"}


def path_of(task: Task) -> str:
    return f"/ws/tasks/{task.pk}/"


# --- 1. the session ends, the account is deactivated -----------------------------------


async def test_signing_out_closes_that_sessions_sockets_and_only_those(
    stack: str, alice: Any, task: Task
) -> None:
    laptop, phone = await sign_in(alice), await sign_in(alice)
    on_laptop, on_phone = socket(path_of(task), laptop), socket(path_of(task), phone)
    await opened(on_laptop)
    await opened(on_phone)
    await sync_to_async(_sign_out)(laptop)
    assert await closed(on_laptop) == CLOSE_SESSION_ENDED
    await answers(on_phone)
    await on_laptop.disconnect()
    await on_phone.disconnect()


async def test_deactivating_an_account_closes_all_its_sockets(
    stack: str, alice: Any, task: Task
) -> None:
    sockets = [socket(path_of(task), await sign_in(alice)) for _ in range(2)]
    for communicator in sockets:
        await opened(communicator)
    alice.is_active = False
    await sync_to_async(alice.save)()
    for communicator in sockets:
        assert await closed(communicator) == CLOSE_SESSION_ENDED
        await communicator.disconnect()


async def test_deleting_an_account_closes_its_sockets(stack: str, alice: Any, task: Task) -> None:
    communicator = socket(path_of(task), await sign_in(alice))
    await opened(communicator)
    await sync_to_async(alice.delete)()
    assert await closed(communicator) == CLOSE_SESSION_ENDED
    await communicator.disconnect()


@pytest.mark.parametrize("change", ["session-deleted", "deactivated-by-update", "password"])
async def test_the_recheck_closes_what_no_signal_announced(
    stack: str, settings: Any, alice: Any, task: Task, change: str
) -> None:
    settings.RELAYBRIDGE_SOCKET_RECHECK_INTERVAL = 0.2
    communicator = socket(path_of(task), await sign_in(alice))
    await opened(communicator)

    def make_change() -> None:
        users = get_user_model().objects.filter(pk=alice.pk)
        if change == "session-deleted":  # expired and cleared, or removed by an admin
            Session.objects.all().delete()
        elif change == "deactivated-by-update":  # QuerySet.update sends no post_save
            users.update(is_active=False)
        else:  # a password changed elsewhere invalidates the other sessions
            alice.set_password("a new one")
            users.update(password=alice.password)

    await sync_to_async(make_change)()
    assert await closed(communicator) == CLOSE_SESSION_ENDED
    await communicator.disconnect()


async def test_the_recheck_closes_a_socket_whose_person_may_no_longer_view_the_thread(
    stack: str, settings: Any, alice: Any, task: Task
) -> None:
    settings.RELAYBRIDGE_SOCKET_RECHECK_INTERVAL = 0.2
    communicator = socket(path_of(task), await sign_in(alice))
    await opened(communicator)
    await sync_to_async(Task.objects.filter(pk=task.pk).update)(description="owner:mallory")
    assert await closed(communicator) == CLOSE_FORBIDDEN
    await communicator.disconnect()


async def test_a_socket_that_may_stay_survives_its_rechecks(
    stack: str, settings: Any, alice: Any, task: Task
) -> None:
    settings.RELAYBRIDGE_SOCKET_RECHECK_INTERVAL = 0.05
    communicator = socket(path_of(task), await sign_in(alice))
    await opened(communicator)
    other = socket(path_of(task), await sign_in(alice))
    # A second socket's connect and snapshot take many re-check intervals of the first.
    await opened(other)
    await other.disconnect()
    await answers(communicator)
    await communicator.disconnect()


# --- 2. at most so many sockets per person ---------------------------------------------


async def test_a_person_holds_at_most_the_cap_and_a_closed_socket_frees_its_place(
    stack: str, settings: Any, alice: Any, task: Task
) -> None:
    settings.RELAYBRIDGE_MAX_SOCKETS_PER_USER = 3
    cookie = await sign_in(alice)
    sockets = [socket(path_of(task), cookie) for _ in range(3)]
    for communicator in sockets:
        await opened(communicator)
    one_too_many = socket(path_of(task), await sign_in(alice))  # another session counts too
    assert await refused(one_too_many) == CLOSE_TOO_MANY_SOCKETS
    await one_too_many.disconnect()

    # Somebody else is not affected.
    bob = await sync_to_async(get_user_model().objects.create_user)("bob", is_staff=True)
    bobs = socket(path_of(task), await sign_in(bob))
    await opened(bobs)
    await bobs.disconnect()

    await sockets.pop().disconnect()
    again = socket(path_of(task), cookie)
    await opened(again)
    for communicator in [*sockets, again]:
        await answers(communicator)
        await communicator.disconnect()


async def test_a_socket_closed_for_a_signout_frees_its_place(
    stack: str, settings: Any, alice: Any, task: Task
) -> None:
    settings.RELAYBRIDGE_MAX_SOCKETS_PER_USER = 1
    old = await sign_in(alice)
    communicator = socket(path_of(task), old)
    await opened(communicator)
    await sync_to_async(_sign_out)(old)
    assert await closed(communicator) == CLOSE_SESSION_ENDED
    # The socket's place is free before the browser has even answered the close.
    fresh = socket(path_of(task), await sign_in(alice))
    await opened(fresh)
    await fresh.disconnect()
    await communicator.disconnect()


def test_the_cap_has_a_default_and_is_checked(settings: Any) -> None:
    assert DEFAULTS["MAX_SOCKETS_PER_USER"] == 20
    assert DEFAULTS["SOCKET_RECHECK_INTERVAL"] == 60.0
    settings.RELAYBRIDGE_MAX_SOCKETS_PER_USER = 0
    settings.RELAYBRIDGE_SOCKET_RECHECK_INTERVAL = 0
    problems = [error.msg for error in check_setting_values()]
    assert any("MAX_SOCKETS_PER_USER" in problem for problem in problems)
    assert any("SOCKET_RECHECK_INTERVAL" in problem for problem in problems)


# --- 3. what a page sends up ------------------------------------------------------------


@pytest.mark.parametrize(
    "sent",
    [
        "[" * 2000 + "]" * 2000,
        '{"type": "ping", "x": ' + "[" * 1500 + "]" * 1500 + "}",
        '{"type": "ping", "pad": "' + "x" * 5000 + '"}',
    ],
    ids=["nested-arrays", "nested-in-a-ping", "over-the-size-bound"],
)
async def test_deep_or_huge_json_is_ignored_and_the_socket_stays_usable(
    stack: str, alice: Any, task: Task, sent: str, caplog: pytest.LogCaptureFixture
) -> None:
    communicator = socket(path_of(task), await sign_in(alice))
    await opened(communicator)
    await communicator.send_to(text_data=sent)
    await answers(communicator)  # exactly one pong: the one for this ping
    await communicator.disconnect()
    assert not [record for record in caplog.records if record.exc_info]


# --- 4. malformed socket paths ----------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/ws/tasks/1/../2/",
        "/ws/tasks/1",
        "/ws/tasks//",
        "/ws/tasks",
        "/ws/tasks/a%0Ab/",
        "/ws/tasks/1/%0A/",
        "/ws/elsewhere/",
        "/",
    ],
)
async def test_a_malformed_socket_path_is_closed_with_a_code_not_a_server_error(
    stack: str, alice: Any, path: str
) -> None:
    communicator = socket(path, await sign_in(alice))
    assert await refused(communicator) == CLOSE_BAD_THREAD
    await communicator.disconnect()


# --- 5. the origin, exactly -------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (b"http://localhost:8666", b"localhost"),
        (b"http://localhost:8000", b"localhost"),
        (b"http://localhost", b"localhost:8000"),
        (b"https://localhost", b"localhost"),
        (b"http://127.0.0.1:8000", b"localhost:8000"),
        (b"http://localhost:8000/path", b"localhost:8000"),
        (b"http://user@localhost", b"localhost"),
    ],
)
async def test_an_origin_that_differs_in_scheme_host_or_port_is_refused(
    stack: str, alice: Any, task: Task, origin: bytes, host: bytes
) -> None:
    communicator = socket(path_of(task), await sign_in(alice), origin=origin, host=host)
    assert await refused(communicator) == CLOSE_BAD_ORIGIN
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (b"http://localhost:8000", b"localhost:8000"),
        (b"http://localhost:80", b"localhost"),
        (b"HTTP://LOCALHOST", b"localhost"),
    ],
)
async def test_the_pages_own_origin_is_accepted(
    stack: str, alice: Any, task: Task, origin: bytes, host: bytes
) -> None:
    communicator = socket(path_of(task), await sign_in(alice), origin=origin, host=host)
    await opened(communicator)
    await communicator.disconnect()


async def test_behind_a_tls_proxy_the_origin_is_https_as_django_sees_the_request(
    stack: str, settings: Any, alice: Any, task: Task
) -> None:
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.USE_X_FORWARDED_HOST = True
    cookie = await sign_in(alice)

    def behind_proxy(origin: bytes, proto: bytes) -> WebsocketCommunicator:
        communicator = socket(path_of(task), cookie, origin=origin, host=b"127.0.0.1:8000")
        communicator.scope["headers"] += [
            (b"x-forwarded-proto", proto),
            (b"x-forwarded-host", b"localhost"),
        ]
        return communicator

    proxied = behind_proxy(b"https://localhost", b"https")
    await opened(proxied)
    await proxied.disconnect()
    # The same origin on a request the proxy did not mark as TLS is another origin.
    plain = behind_proxy(b"https://localhost", b"http")
    assert await refused(plain) == CLOSE_BAD_ORIGIN
    await plain.disconnect()


async def test_a_host_not_in_allowed_hosts_is_no_origin_of_its_own(
    stack: str, alice: Any, task: Task
) -> None:
    # Without Channels' validator in front (a host that forgot it), as after DNS rebinding.
    app = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    communicator = socket(
        path_of(task),
        await sign_in(alice),
        origin=b"http://rebound.example",
        host=b"rebound.example",
        app=app,
    )
    assert await refused(communicator) == CLOSE_BAD_ORIGIN
    await communicator.disconnect()


async def test_an_allowed_origin_matches_exactly(
    stack: str, settings: Any, alice: Any, task: Task
) -> None:
    settings.RELAYBRIDGE_ALLOWED_ORIGINS = ["https://app.example.com:8443"]
    app = AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
    cookie = await sign_in(alice)
    listed = socket(path_of(task), cookie, origin=b"https://app.example.com:8443", app=app)
    await opened(listed)
    await listed.disconnect()
    for other in (b"https://app.example.com", b"http://app.example.com:8443"):
        communicator = socket(path_of(task), cookie, origin=other, app=app)
        assert await refused(communicator) == CLOSE_BAD_ORIGIN
        await communicator.disconnect()


def test_allowed_origins_are_checked(settings: Any) -> None:
    settings.RELAYBRIDGE_ALLOWED_ORIGINS = [
        "https://*.example.com",
        "example.com",
        "https://ok.example",
    ]
    problems = [error.msg for error in check_setting_values()]
    assert len([problem for problem in problems if "ALLOWED_ORIGINS" in problem]) == 2


@pytest.mark.redis
async def test_a_sockets_place_in_the_shared_cache_expires_if_its_process_dies(
    settings: Any, redis_url: str, alice: Any, task: Task
) -> None:
    use_redis_stack(settings, redis_url)
    prefix = f"relaybridge-test-{uuid.uuid4().hex}"
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        }
    }
    settings.RELAYBRIDGE_ADAPTER = OWN_TASKS
    _load_adapter.cache_clear()
    communicator = socket(path_of(task), await sign_in(alice))
    await opened(communicator)
    client = redis.Redis.from_url(redis_url)
    try:
        keys = await client.keys(f"{prefix}:*relaybridge:sockets:*")
        assert len(keys) == 1
        # Held with an expiry, renewed while the socket is open: a Daphne process that
        # dies without closing its sockets frees their places.
        assert 0 < await client.ttl(keys[0]) <= slot_lease()
        await communicator.disconnect()
        assert await client.keys(f"{prefix}:*relaybridge:sockets:*") == []
    finally:
        await client.aclose()
        _load_adapter.cache_clear()


def test_signing_out_works_when_the_stream_layer_cannot_be_reached(
    settings: Any, alice: Any, caplog: pytest.LogCaptureFixture
) -> None:
    use_embedded_default(settings)
    # A Redis layer on a port nothing listens on.
    unreachable = {"hosts": [{"address": "redis://127.0.0.1:9", "socket_timeout": 1}]}
    settings.CHANNEL_LAYERS = {
        **settings.CHANNEL_LAYERS,
        "streams": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": unreachable,
        },
    }
    settings.RELAYBRIDGE_STREAM_LAYER = "streams"
    _sign_out(_sign_in(alice))
    assert "could not tell the stream sockets of a person to close" in caplog.text
