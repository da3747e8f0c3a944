"""A card's stream socket with the django-contrib-comments adapter: closed on sign-out,
on deactivation and by the re-check, and refused past the per-person cap."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from relaybridge.consumers import CLOSE_SESSION_ENDED, CLOSE_TOO_MANY_SOCKETS
from relaybridge.stream_urls import stream_path

from ..asgi import application
from ..cards.models import Card

pytestmark = pytest.mark.django_db(transaction=True)

DEADLINE = 5.0


def _sign_in(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


def _sign_out(cookie: str) -> None:
    client = Client()
    client.cookies[django_settings.SESSION_COOKIE_NAME] = cookie
    assert client.post(reverse("logout")).status_code in (200, 302)


async def open_socket(card: Card, cookie: str) -> WebsocketCommunicator:
    path = await sync_to_async(stream_path)(card)
    communicator = WebsocketCommunicator(
        application,
        path,
        headers=[
            (b"host", b"localhost"),
            (b"origin", b"http://localhost"),
            (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={cookie}".encode()),
        ],
    )
    connected, code = await communicator.connect(timeout=DEADLINE)
    assert connected, code
    return communicator


async def closed(communicator: WebsocketCommunicator) -> int:
    while True:
        message = await communicator.receive_output(timeout=DEADLINE)
        if message["type"] == "websocket.close":
            return int(message["code"])


async def test_signing_out_closes_the_cards_socket(user: Any, card: Card) -> None:
    cookie = await sync_to_async(_sign_in)(user)
    communicator = await open_socket(card, cookie)
    assert (await communicator.receive_json_from(timeout=DEADLINE))["type"] == "snapshot"
    await sync_to_async(_sign_out)(cookie)
    assert await closed(communicator) == CLOSE_SESSION_ENDED
    await communicator.disconnect()


async def test_deactivating_the_account_closes_the_cards_socket(user: Any, card: Card) -> None:
    communicator = await open_socket(card, await sync_to_async(_sign_in)(user))
    assert (await communicator.receive_json_from(timeout=DEADLINE))["type"] == "snapshot"
    user.is_active = False
    await sync_to_async(user.save)()
    assert await closed(communicator) == CLOSE_SESSION_ENDED
    await communicator.disconnect()


async def test_the_recheck_closes_the_cards_socket(settings: Any, user: Any, card: Card) -> None:
    settings.RELAYBRIDGE_SOCKET_RECHECK_INTERVAL = 0.2
    communicator = await open_socket(card, await sync_to_async(_sign_in)(user))
    assert (await communicator.receive_json_from(timeout=DEADLINE))["type"] == "snapshot"
    await sync_to_async(get_user_model().objects.filter(pk=user.pk).update)(is_active=False)
    assert await closed(communicator) == CLOSE_SESSION_ENDED
    await communicator.disconnect()


async def test_the_cap_holds_for_the_cards_socket(settings: Any, user: Any, card: Card) -> None:
    settings.RELAYBRIDGE_MAX_SOCKETS_PER_USER = 1
    cookie = await sync_to_async(_sign_in)(user)
    first = await open_socket(card, cookie)
    assert (await first.receive_json_from(timeout=DEADLINE))["type"] == "snapshot"
    second = await open_socket(card, cookie)
    assert await closed(second) == CLOSE_TOO_MANY_SOCKETS
    await second.disconnect()
    await first.disconnect()
