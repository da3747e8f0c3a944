"""The Retry and Stop views: permissions, CSRF, state conflicts, and the pushes."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import reverse
from django.utils.crypto import get_random_string

from project.tasks.models import Task
from relaybridge import streams
from relaybridge.buffers import RedisStreamBuffer
from relaybridge.models import AgentRun
from tests.stacks import stream_layer

from .conftest import cookie_for, received_before_marker, socket

Status = AgentRun.Status
JSON: dict[str, Any] = {"HTTP_ACCEPT": "application/json"}


def url(action: str, run_id: Any) -> str:
    return reverse(f"relaybridge:{action}-run", kwargs={"run_id": run_id})


def status_of(run: AgentRun) -> str:
    return AgentRun.objects.get(pk=run.pk).status


async def push(group: str, event: streams.BrowserMessage) -> None:
    """A push to the thread's group, as the relay worker makes it."""
    await stream_layer().group_send(group, streams.group_message(event))


def logged_in(user: Any, **options: Any) -> Client:
    client = Client(**options)
    client.force_login(user)
    return client


@pytest.mark.django_db
@pytest.mark.usefixtures("embedded")
class TestRefusals:
    @pytest.mark.parametrize("action", ["retry", "stop"])
    def test_csrf_is_enforced(
        self, action: str, make_user: Callable[..., Any], make_run: Callable[..., AgentRun]
    ) -> None:
        user = make_user()
        run = make_run(Status.FAILED if action == "retry" else Status.STREAMING, requested_by=user)
        client = logged_in(user, enforce_csrf_checks=True)
        assert client.post(url(action, run.run_id), **JSON).status_code == 403
        assert status_of(run) == run.status

        token = get_random_string(32)
        client.cookies["csrftoken"] = token
        response = client.post(url(action, run.run_id), HTTP_X_CSRFTOKEN=token, **JSON)
        assert response.status_code == 200, response.content
        assert status_of(run) != run.status

    @pytest.mark.parametrize("action", ["retry", "stop"])
    def test_login_is_required(self, action: str, make_run: Callable[..., AgentRun]) -> None:
        run = make_run(Status.FAILED)
        response = Client().post(url(action, run.run_id), **JSON)
        assert response.status_code == 302
        assert response["Location"].startswith(resolve_url(settings.LOGIN_URL) + "?next=")
        assert status_of(run) == Status.FAILED

    @pytest.mark.parametrize("action", ["retry", "stop"])
    def test_only_post(
        self, action: str, make_user: Callable[..., Any], make_run: Callable[..., AgentRun]
    ) -> None:
        run = make_run(Status.FAILED)
        assert logged_in(make_user()).get(url(action, run.run_id)).status_code == 405

    @pytest.mark.parametrize("action", ["retry", "stop"])
    def test_an_unknown_run_is_not_found(self, action: str, make_user: Callable[..., Any]) -> None:
        client = logged_in(make_user())
        assert client.post(url(action, uuid.uuid4()), **JSON).status_code == 404
        assert client.post(f"/relaybridge/runs/not-a-uuid/{action}/").status_code == 404

    @pytest.mark.parametrize("action", ["retry", "stop"])
    def test_a_user_without_access_is_forbidden(
        self,
        action: str,
        staff_only: None,
        make_user: Callable[..., Any],
        make_run: Callable[..., AgentRun],
    ) -> None:
        run = make_run(Status.FAILED if action == "retry" else Status.STREAMING)
        response = logged_in(make_user("bob")).post(url(action, run.run_id))
        assert response.status_code == 403
        assert status_of(run) == run.status

    @pytest.mark.parametrize(
        ("action", "status"),
        [
            ("retry", Status.STREAMING),
            ("retry", Status.REPLIED),
            ("retry", Status.QUEUED),
            ("stop", Status.REPLIED),
            ("stop", Status.FAILED),
            ("stop", Status.STOPPED),
        ],
    )
    def test_a_run_in_the_wrong_state_is_a_conflict(
        self,
        action: str,
        status: str,
        make_user: Callable[..., Any],
        make_run: Callable[..., AgentRun],
    ) -> None:
        user = make_user()
        run = make_run(status, requested_by=user)
        response = logged_in(user).post(url(action, run.run_id), **JSON)
        assert response.status_code == 409
        assert response.json()["ok"] is False
        assert status_of(run) == status

    def test_a_plain_form_post_goes_back_to_the_page(
        self, make_user: Callable[..., Any], make_run: Callable[..., AgentRun], task: Task
    ) -> None:
        user = make_user()
        run = make_run(Status.STREAMING, requested_by=user)
        client = logged_in(user)
        page = f"http://testserver/tasks/{task.pk}/"
        response = client.post(url("stop", run.run_id), HTTP_REFERER=page)
        assert (response.status_code, response["Location"]) == (302, page)
        assert status_of(run) == Status.STOPPED
        # A conflict, and a referer on another site, still land on a page of ours.
        response = client.post(url("stop", run.run_id), HTTP_REFERER="https://evil.example/")
        assert (response.status_code, response["Location"]) == (302, "/")


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_stop_keeps_the_partial_text_for_every_watcher_and_drops_later_tokens(
    redis_stack: str, task: Task, make_user: Callable[..., Any], make_run: Callable[..., AgentRun]
) -> None:
    bob = await sync_to_async(make_user)("bob")
    run = await sync_to_async(make_run)(Status.STREAMING, requested_by=bob)
    run_id = str(run.run_id)
    group = streams.group_name_for_thread(run.thread_key)
    buffer = RedisStreamBuffer.from_url(redis_stack)
    cookie = await cookie_for(make_user)
    watcher = socket(task.pk, cookie)
    try:
        await buffer.append(run_id, 1, "The plan ")
        await buffer.append(run_id, 2, "is ")
        assert (await watcher.connect())[0]
        assert (await watcher.receive_json_from(timeout=2))["runs"][0]["text"] == "The plan is "

        client = await sync_to_async(logged_in)(bob)
        response = await sync_to_async(client.post)(url("stop", run_id), **JSON)
        assert response.status_code == 200
        body = response.json()
        assert {key: body[key] for key in ("ok", "status", "text")} == {
            "ok": True,
            "status": "stopped",
            "text": "The plan is ",
        }
        # The run's status message, for a page whose socket is down meanwhile.
        assert (body["run"]["type"], body["run"]["status"]) == ("run.status", "stopped")
        assert body["run"]["status_text"] == "Athena was stopped."

        pushed = await watcher.receive_json_from(timeout=2)
        assert pushed["type"] == "run.status"
        assert (pushed["run"], pushed["status"], pushed["text"]) == (
            run_id,
            "stopped",
            "The plan is ",
        )
        stored = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
        assert (stored.status, stored.partial_text) == (Status.STOPPED, "The plan is ")
        assert stored.finished_at is not None

        # Relay cannot cancel: the agent's tokens keep coming, and nobody sees them,
        # neither the page that watched nor one that opens afterwards.
        latecomer = socket(task.pk, cookie)
        assert (await latecomer.connect())[0]
        assert (await latecomer.receive_json_from(timeout=2))["runs"] == []
        await push(group, streams.delta_event(run_id, 3, "to ship"))
        assert await received_before_marker(watcher, group) == []
        assert await received_before_marker(latecomer, group) == []
        await latecomer.disconnect()
    finally:
        await watcher.disconnect()
        await buffer.clear(run_id)
        await buffer.close()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_retry_requeues_the_same_run_and_tells_the_page(
    redis_stack: str, task: Task, make_user: Callable[..., Any], make_run: Callable[..., AgentRun]
) -> None:
    bob = await sync_to_async(make_user)("bob")
    run = await sync_to_async(make_run)(
        Status.FAILED, error_code="agent_offline", partial_text="half", attempts=3, requested_by=bob
    )
    run_id = str(run.run_id)
    cookie = await cookie_for(make_user)
    watcher = socket(task.pk, cookie)
    try:
        assert (await watcher.connect())[0]
        assert (await watcher.receive_json_from(timeout=2))["runs"] == []

        client = await sync_to_async(logged_in)(bob)
        response = await sync_to_async(client.post)(url("retry", run_id), **JSON)
        assert response.status_code == 200
        body = response.json()
        # Eager Celery may already have claimed it for sending.
        assert body["ok"] is True and body["status"] in ("queued", "sending")

        pushed = await watcher.receive_json_from(timeout=2)
        assert (pushed["type"], pushed["run"], pushed["status"]) == (
            "run.status",
            run_id,
            body["status"],
        )
        assert (pushed["code"], pushed["text"], pushed["seq"]) == ("", "", 0)
        stored = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
        assert stored.run_id == run.run_id and stored.status == body["status"]
        assert (stored.error_code, stored.partial_text) == ("", "")

        # The retried run's new stream starts again at seq 1 and reaches the page.
        delta = streams.delta_event(run_id, 1, "Second try")
        await push(streams.group_name_for_thread(run.thread_key), delta)
        assert await watcher.receive_json_from(timeout=2) == delta
    finally:
        await watcher.disconnect()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
async def test_a_token_streamed_while_stopping_stays_with_the_stopped_run(
    redis_stack: str, make_run: Callable[..., AgentRun]
) -> None:
    from relaybridge import services

    run = await sync_to_async(make_run)(Status.STREAMING)
    run_id = str(run.run_id)
    buffer = RedisStreamBuffer.from_url(redis_stack)
    try:
        await buffer.append(run_id, 1, "The plan ")
        # Stop has read "The plan " (seq 1) and stopped the run; meanwhile the relay
        # worker buffered, and pushed to the pages, its next token.
        assert await sync_to_async(services.mark_stopped)(run_id, "The plan ")
        await buffer.append(run_id, 2, "is ")
        settled = await sync_to_async(services.settle_stopped_text)(run_id, "The plan ", 1)
        assert settled == ("The plan is ", 2)
        stored = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
        assert (stored.status, stored.partial_text) == (Status.STOPPED, "The plan is ")
        # Text that does not carry on what was kept (another attempt's) changes nothing.
        await buffer.replace(run_id, "Another answer entirely", 3)
        settled = await sync_to_async(services.settle_stopped_text)(run_id, "The plan is ", 2)
        assert settled == ("The plan is ", 2)
        stored = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
        assert stored.partial_text == "The plan is "
    finally:
        await buffer.clear(run_id)
        await buffer.close()
