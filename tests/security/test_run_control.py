"""Stop and Retry belong to the person who asked (and to staff and permitted users).

Anyone who may watch a thread sees its runs, but a Retry sends the question again
in the asker's name and a Stop ends their answer: the views refuse everyone else
with 403 and change nothing, the ledger records who pressed which and when, and
the page (server-rendered, and every ``run.status`` the socket forwards) offers
the buttons only to those who may use them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from project.tasks.models import Task
from relaybridge import streams
from relaybridge.adapters import CONTROL_PERMISSION, get_adapter
from relaybridge.models import AgentRun
from tests.consumers.conftest import create_run, session_cookie, socket
from tests.stacks import eager_celery, stream_layer, use_embedded_default, use_redis_stack

Status = AgentRun.Status
JSON: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}
#: What a Retry or Stop form on a page looks like (relaybridge/run.html).
ACTION = "data-relaybridge-run-action"


@pytest.fixture
def embedded(settings: Any) -> Iterator[None]:
    use_embedded_default(settings)
    settings.RELAYBRIDGE_AGENTS = ["athena", "klyve"]
    with eager_celery():
        yield


@pytest.fixture
def people(db: None) -> dict[str, Any]:
    """The asker, a bystander, staff, and a user granted relaybridge.control_agentrun."""
    make = get_user_model().objects.create_user
    people = {
        "asker": make("asker", password="pw"),
        "other": make("other", password="pw"),
        "staff": make("staff", password="pw", is_staff=True),
        "granted": make("granted", password="pw"),
    }
    people["granted"].user_permissions.add(
        Permission.objects.get(content_type__app_label="relaybridge", codename="control_agentrun")
    )
    return people


def url(action: str, run: AgentRun) -> str:
    return reverse(f"relaybridge:{action}-run", kwargs={"run_id": run.run_id})


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def startable(action: str) -> str:
    """A status in which ``action`` is offered."""
    return Status.FAILED if action == "retry" else Status.STREAMING


# --- the views --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
class TestViews:
    @pytest.mark.parametrize("action", ["retry", "stop"])
    @pytest.mark.parametrize("accept", ["json", "form"])
    def test_another_persons_press_is_forbidden_and_changes_nothing(
        self, action: str, accept: str, people: dict[str, Any], task: Task
    ) -> None:
        run = create_run(
            task, startable(action), requested_by=people["asker"], partial_text="so far"
        )
        before = AgentRun.objects.values().get(pk=run.pk)
        headers = JSON if accept == "json" else {"HTTP_REFERER": "http://testserver/"}
        response = client_for(people["other"]).post(url(action, run), **headers)
        assert response.status_code == 403
        assert response.json()["error"] == "forbidden"
        assert "Only the person who asked" in response.json()["message"]
        assert AgentRun.objects.values().get(pk=run.pk) == before

    @pytest.mark.parametrize("who", ["asker", "staff", "granted"])
    def test_the_asker_staff_and_a_permitted_user_may_stop_and_it_is_recorded(
        self, who: str, people: dict[str, Any], task: Task
    ) -> None:
        run = create_run(task, Status.STREAMING, requested_by=people["asker"])
        before = timezone.now()
        response = client_for(people[who]).post(url("stop", run), **JSON)
        assert response.status_code == 200, response.content
        run.refresh_from_db()
        assert run.status == Status.STOPPED
        assert run.stopped_by == people[who]
        assert run.stopped_at is not None and before <= run.stopped_at <= timezone.now()
        assert (run.retried_by, run.retried_at) == (None, None)
        # The one who pressed gets the run back with Retry on it.
        assert ACTION in response.json()["run"]["html"]
        assert "control_html" not in response.json()["run"]

    @pytest.mark.parametrize("who", ["asker", "staff", "granted"])
    def test_the_asker_staff_and_a_permitted_user_may_retry_and_it_is_recorded(
        self, who: str, people: dict[str, Any], task: Task
    ) -> None:
        run = create_run(task, Status.FAILED, requested_by=people["asker"], error_code="x")
        before = timezone.now()
        response = client_for(people[who]).post(url("retry", run), **JSON)
        assert response.status_code == 200, response.content
        run.refresh_from_db()
        assert run.status in (Status.QUEUED, Status.SENDING)
        assert run.error_code == ""
        assert run.retried_by == people[who]
        assert run.retried_at is not None and before <= run.retried_at <= timezone.now()
        # Still in the asker's name: a Retry changes who pressed, not who asked.
        assert run.requested_by == people["asker"]

    def test_a_stop_then_a_retry_keeps_both_records(
        self, people: dict[str, Any], task: Task
    ) -> None:
        run = create_run(task, Status.STREAMING, requested_by=people["asker"])
        assert client_for(people["staff"]).post(url("stop", run), **JSON).status_code == 200
        assert client_for(people["asker"]).post(url("retry", run), **JSON).status_code == 200
        run.refresh_from_db()
        assert (run.stopped_by, run.retried_by) == (people["staff"], people["asker"])
        assert run.stopped_at is not None and run.retried_at is not None
        assert run.stopped_at <= run.retried_at

    def test_a_run_nobody_asked_for_is_only_for_staff_and_permitted_users(
        self, people: dict[str, Any], task: Task
    ) -> None:
        # An agent's hop (requested_by None): no one is its asker.
        run = create_run(task, Status.STREAMING)
        for who in ("asker", "other"):
            assert client_for(people[who]).post(url("stop", run), **JSON).status_code == 403
        assert AgentRun.objects.get(pk=run.pk).status == Status.STREAMING
        assert client_for(people["granted"]).post(url("stop", run), **JSON).status_code == 200

    def test_a_conflict_records_nobody(self, people: dict[str, Any], task: Task) -> None:
        run = create_run(task, Status.REPLIED, requested_by=people["asker"])
        assert client_for(people["asker"]).post(url("stop", run), **JSON).status_code == 409
        assert client_for(people["asker"]).post(url("retry", run), **JSON).status_code == 409
        run.refresh_from_db()
        assert (run.stopped_by, run.stopped_at, run.retried_by, run.retried_at) == (
            None,
            None,
            None,
            None,
        )


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
def test_can_control_refuses_anonymous_and_inactive_users(
    people: dict[str, Any], task: Task
) -> None:
    adapter = get_adapter()
    run = create_run(task, Status.STREAMING, requested_by=people["asker"])
    assert adapter.can_control(people["asker"], run) is True
    assert adapter.can_control(people["other"], run) is False
    assert adapter.can_control(AnonymousUser(), run) is False
    for who in ("asker", "staff", "granted"):
        user = people[who]
        user.is_active = False
        user.save()
        fresh = get_user_model().objects.get(pk=user.pk)
        assert adapter.can_control(fresh, run) is False, who
    assert CONTROL_PERMISSION == "relaybridge.control_agentrun"


# --- the page ---------------------------------------------------------------------------


def task_page(user: Any, task: Task) -> str:
    response = client_for(user).get(reverse("tasks:task_detail", args=[task.pk]))
    assert response.status_code == 200
    return response.content.decode()


def stream_json(body: str) -> str:
    """The stream area's JSON of runs, as the page embeds it for its script."""
    found = re.search(r'data-relaybridge-runs="([^"]+)"', body)
    assert found is not None
    data = re.search(rf'<script id="{found.group(1)}" type="application/json">(.*?)</script>', body)
    assert data is not None
    return data.group(1)


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
@pytest.mark.parametrize("status", [Status.FAILED, Status.STOPPED, Status.STREAMING])
def test_the_page_offers_the_buttons_only_to_those_who_may_use_them(
    status: str, people: dict[str, Any], task: Task
) -> None:
    run = create_run(task, status, requested_by=people["asker"], partial_text="half")
    action = "retry" if status in (Status.FAILED, Status.STOPPED) else "stop"
    form = f'action="{url(action, run)}"'
    for who in ("asker", "staff", "granted"):
        body = task_page(people[who], task)
        assert form in body, who
        assert ACTION in stream_json(body), who
    body = task_page(people["other"], task)
    # The run is shown (its status, its text), only without Retry or Stop.
    assert f'data-relaybridge-run="{run.run_id}"' in body
    assert form not in body
    assert ACTION not in body
    assert url(action, run) not in stream_json(body)


# --- the socket -------------------------------------------------------------------------


async def broadcast(
    group: str, event: streams.BrowserMessage, sockets: dict[str, WebsocketCommunicator]
) -> dict[str, list[dict[str, Any]]]:
    """Push ``event`` to ``group``, then a marker: what each socket got before the marker.

    Pushes reach a socket in order, so waiting for the marker proves anything else
    pushed before it was dropped (not merely slow)."""
    marker = streams.error_event("marker-run", "marker", "marker", None)
    await stream_layer().group_send(group, streams.group_message(event))
    await stream_layer().group_send(group, streams.group_message(marker))
    received: dict[str, list[dict[str, Any]]] = {}
    for who, communicator in sockets.items():
        received[who] = []
        while (message := await communicator.receive_json_from(timeout=5)) != marker:
            received[who].append(message)
    return received


def runs_html(message: dict[str, Any]) -> list[str]:
    return [state["html"] for state in message.get("runs", [])]


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_each_socket_gets_the_buttons_only_if_its_user_may_use_them(
    settings: Any, redis_url: str, people: dict[str, Any], task: Task
) -> None:
    use_redis_stack(settings, redis_url)
    settings.RELAYBRIDGE_AGENTS = ["athena"]
    run = await sync_to_async(create_run)(task, Status.STREAMING, requested_by=people["asker"])
    group = streams.group_name_for_thread(run.thread_key)
    watchers = ("asker", "other", "granted")
    cookies = {who: await sync_to_async(session_cookie)(people[who]) for who in watchers}
    sockets = {who: socket(task.pk, cookie) for who, cookie in cookies.items()}
    try:
        snapshots = {}
        for who, communicator in sockets.items():
            assert (await communicator.connect())[0]
            snapshots[who] = await communicator.receive_json_from(timeout=5)
        assert all(ACTION in html for html in runs_html(snapshots["asker"]))
        assert all(ACTION in html for html in runs_html(snapshots["granted"]))
        assert runs_html(snapshots["other"]) and all(
            ACTION not in html for html in runs_html(snapshots["other"])
        )

        # The run fails: a push to every page of the thread, as the relay worker makes it.
        await sync_to_async(AgentRun.objects.filter(pk=run.pk).update)(status=Status.FAILED)
        await sync_to_async(run.refresh_from_db)()
        event = await sync_to_async(streams.status_event)(run)
        assert ACTION not in event["html"] and ACTION in event.get("control_html", "")
        received = await broadcast(group, event, sockets)
        for who, messages in received.items():
            assert [m["type"] for m in messages] == ["run.status"], who
            assert "control_html" not in messages[0], who
        retry = f'action="{url("retry", run)}"'
        assert retry in received["asker"][0]["html"]
        assert retry in received["granted"][0]["html"]
        assert retry not in received["other"][0]["html"]
        assert ACTION not in received["other"][0]["html"]
        assert "Athena" in received["other"][0]["html"]  # the run itself is shown

        # A snapshot pushed to the group is for no one in particular: no buttons' markup.
        state = await sync_to_async(streams.run_state)(run)
        assert "control_html" in state
        received = await broadcast(group, streams.snapshot_event([state]), sockets)
        for who, messages in received.items():
            (snapshot,) = messages
            assert snapshot["type"] == "snapshot", who
            assert [sorted(shown) for shown in snapshot["runs"]] == [
                sorted(set(state) - {"control_html"})
            ]
            assert ACTION not in snapshot["runs"][0]["html"], who
    finally:
        for communicator in sockets.values():
            await communicator.disconnect()


def test_status_for_viewer_keeps_the_push_intact() -> None:
    """One push reaches many sockets: deciding for one must not change it for the next."""

    def event() -> streams.RunStatusMessage:
        return {
            "type": "run.status",
            "run": "r",
            "agent_id": "athena",
            "agent_name": "Athena",
            "comment_id": "1",
            "status": "failed",
            "retry_in": None,
            "code": "",
            "message": "",
            "text": "",
            "seq": 0,
            "parts": 0,
            "attempt": 1,
            "status_text": "",
            "writing_text": "",
            "status_template": "",
            "html": "plain",
            "control_html": "with buttons",
        }

    pushed = event()
    assert streams.for_viewer(pushed, True)["html"] == "with buttons"
    assert streams.for_viewer(pushed, False)["html"] == "plain"
    assert "control_html" not in streams.for_viewer(pushed, True)
    assert pushed == event()
