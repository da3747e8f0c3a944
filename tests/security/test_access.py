"""Who may watch a thread and press its buttons, and what a forged request achieves.

Complements ``tests/consumers`` (no session, a user the adapter refuses, an
unknown thread, a foreign origin, CSRF on Retry/Stop): here with per-task access
(:mod:`tests.security.adapters`), so a user who may see *one* task tries another
task's socket and runs, origins that only look like ours, and garbage sent up
the socket. CSRF on every POST is in ``test_csrf``.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client
from django.urls import reverse

from project.asgi import application
from project.tasks.models import Task
from relaybridge import streams
from relaybridge.adapters import get_adapter
from relaybridge.consumers import CLOSE_FORBIDDEN
from relaybridge.models import AgentRun
from tests.consumers.conftest import create_run, received_before_marker
from tests.stacks import stream_layer

Status = AgentRun.Status
JSON: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}


def cookie(user: Any) -> str:
    client = Client()
    client.force_login(user)
    return str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


def socket(task: Task, session: str | None, origin: bytes | None = b"http://localhost") -> Any:
    headers = [(b"host", b"localhost")]
    if origin is not None:
        headers.append((b"origin", origin))
    if session:
        headers.append((b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={session}".encode()))
    return WebsocketCommunicator(application, f"/ws/tasks/{task.pk}/", headers=headers)


async def close_code(communicator: WebsocketCommunicator) -> int | None:
    """None when the socket was accepted and stays open with a snapshot."""
    connected, code = await communicator.connect()
    if not connected:
        return int(code or 1006)
    first = await communicator.receive_output(timeout=3)
    if first["type"] == "websocket.close":
        return int(first["code"])
    return None


# --- the socket -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("own_tasks")
class TestSocket:
    async def test_only_the_tasks_owner_may_watch_it(
        self, people: dict[str, Any], tasks: dict[str, Task]
    ) -> None:
        alice = await sync_to_async(cookie)(people["alice"])
        mine, theirs = socket(tasks["alice"], alice), socket(tasks["mallory"], alice)
        assert await close_code(mine) is None
        assert await close_code(theirs) == CLOSE_FORBIDDEN
        await mine.disconnect()
        await theirs.disconnect()

    async def test_a_session_that_ended_or_whose_user_was_deactivated_is_refused(
        self, people: dict[str, Any], tasks: dict[str, Task]
    ) -> None:
        def signed_out_cookie() -> str:
            client = Client()
            client.force_login(people["alice"])
            value = str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)
            client.logout()  # the server forgets the session; the browser may keep it
            return value

        ended = socket(tasks["alice"], await sync_to_async(signed_out_cookie)())
        assert await close_code(ended) == CLOSE_FORBIDDEN
        await ended.disconnect()

        alice = await sync_to_async(cookie)(people["alice"])
        people["alice"].is_active = False
        await sync_to_async(people["alice"].save)()
        deactivated = socket(tasks["alice"], alice)
        assert await close_code(deactivated) == CLOSE_FORBIDDEN
        await deactivated.disconnect()

    @pytest.mark.parametrize(
        "origin",
        [
            None,
            b"null",
            b"https://evil.example",
            b"http://localhost.evil.example",
            b"http://evil.example/localhost",
            b"file://",
        ],
    )
    async def test_a_cross_origin_handshake_is_refused_even_with_a_valid_session(
        self, people: dict[str, Any], tasks: dict[str, Task], origin: bytes | None
    ) -> None:
        alice = await sync_to_async(cookie)(people["alice"])
        communicator = socket(tasks["alice"], alice, origin=origin)
        assert await close_code(communicator) is not None
        await communicator.disconnect()

    async def test_a_socket_never_hears_another_tasks_runs(
        self, people: dict[str, Any], tasks: dict[str, Task]
    ) -> None:
        alice = await sync_to_async(cookie)(people["alice"])
        other = await sync_to_async(create_run)(tasks["mallory"], Status.STREAMING)
        communicator = socket(tasks["alice"], alice)
        assert await close_code(communicator) is None
        delta = streams.delta_event(str(other.run_id), 1, "secret plans")
        await stream_layer().group_send(
            streams.group_name_for_thread(other.thread_key), streams.group_message(delta)
        )
        own_group = streams.group_name_for_thread(get_adapter().thread_key(tasks["alice"]))
        assert await received_before_marker(communicator, own_group) == []
        await communicator.disconnect()

    @pytest.mark.parametrize(
        "sent",
        [
            "not json at all",
            "[1, 2, 3]",
            '{"type": "relaybridge.run.delta", "event": {"run": "x", "seq": 1, "text": "forged"}}',
            '{"type": "relaybridge.run.reply", "event": {"run": "x", "html": "<script>"}}',
            '{"type": "websocket.disconnect"}',
            '"' + "x" * 200_000 + '"',
        ],
        ids=["text", "array", "forged-delta", "forged-reply", "forged-disconnect", "huge"],
    )
    async def test_what_a_page_sends_up_the_socket_is_never_dispatched_or_fatal(
        self, people: dict[str, Any], tasks: dict[str, Task], sent: str
    ) -> None:
        alice = await sync_to_async(cookie)(people["alice"])
        communicator = socket(tasks["alice"], alice)
        assert await close_code(communicator) is None
        await communicator.send_to(text_data=sent)
        await communicator.send_to(bytes_data=b"\xff\x00binary")
        await communicator.send_json_to({"type": "ping"})
        # Nothing is echoed, forged or closed: the socket still answers its ping.
        assert await communicator.receive_json_from(timeout=3) == {"type": "pong"}
        await communicator.disconnect()


# --- the buttons ------------------------------------------------------------------------


def button(action: str, run_id: Any) -> str:
    return reverse(f"relaybridge:{action}-run", kwargs={"run_id": run_id})


@pytest.mark.django_db
@pytest.mark.usefixtures("own_tasks")
@pytest.mark.parametrize(("action", "status"), [("retry", Status.FAILED), ("stop", "streaming")])
def test_a_forged_run_id_of_another_task_is_forbidden_and_changes_nothing(
    people: dict[str, Any], tasks: dict[str, Task], action: str, status: str
) -> None:
    theirs = create_run(tasks["mallory"], status)
    client = Client()
    client.force_login(people["alice"])
    response = client.post(button(action, theirs.run_id), **JSON)
    assert response.status_code == 403
    assert "mallory" not in response.content.decode()
    assert AgentRun.objects.get(pk=theirs.pk).status == status
    # A made-up id and a malformed one are not found, and say nothing more.
    assert client.post(button(action, uuid.uuid4()), **JSON).status_code == 404
    assert client.post(f"/relaybridge/runs/{theirs.pk}/{action}/").status_code == 404
