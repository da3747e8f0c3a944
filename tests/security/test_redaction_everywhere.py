"""A hostile agent's tokens are blanked everywhere its text goes, and its metadata bounded.

The worker runs in the test's event loop against the emulator, with the app token
the test configures (``RELAY_APP_TOKEN``, which is what redaction knows), a real
Redis (channel layer and the stream buffer that the Stop view and a new page read)
and the test database. A ``stall`` run is accepted and goes silent; the emulator's
raw mode (:mod:`relaybridge.emulator.raw`) then speaks for the agent on the
worker's connection: it streams the app token split across deltas and a Relay
token glued to a word, and ends the run with a reply, an error or not at all.

Nothing any page is pushed, no snapshot a new tab gets, no answer of Stop, no
partial text, no error and no stored metadata may hold either token, and a count
too large for its column costs nothing but its size.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from project.asgi import application
from relaybridge import agents, streams
from relaybridge.models import AgentRun
from relaybridge.testing import TEST_APP_ID, running_emulator
from relaybridge.worker.bridge import BridgeWorker, WorkerOptions
from relaybridge.worker.leader import LocalLeaderLock
from tests.worker.stack import GroupListener, post_watched_mention, run_status, runs_for, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.redis]

Status = AgentRun.Status

#: Not shaped like a Relay token: only knowing the app token can blank it.
APP_TOKEN = "Zq9-app-s3cret.Kv2"
AGENT_TOKEN = "rla_athena_4f9c2b7d1e8a"

#: The agent's deltas: the app token split three ways, a Relay token glued to a word
#: and split after its first letters.
DELTAS = ("The key is Zq9-a", "pp-s3c", "ret.Kv2, and foo_rl", "a_athena_4f9c", "2b7d1e8a. Done")
SHOWN = "The key is [redacted], and foo_[redacted]. Done"

#: The run is stopped after these: the app token is cut short by the Stop.
CUT_SHORT = ("So far: Zq9-app-s", "3cret")


def leaks(value: Any) -> list[str]:
    """The pieces of either secret in ``value`` (any JSON-able value, as text)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    pieces = ("s3cret", "Zq9-app", "athena_4f9c", "4f9c2b7d", "rla_", "RLA_")
    return [piece for piece in pieces if piece in text]


@pytest.fixture(autouse=True)
def app_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAY_APP_TOKEN", APP_TOKEN)


@contextlib.asynccontextmanager
async def hostile_stack(redis_stack: str) -> AsyncIterator[Any]:
    """The emulator and a worker that uses the app token and the site's stream buffer."""
    async with running_emulator(app_tokens={APP_TOKEN: TEST_APP_ID}) as relay:
        options = WorkerOptions(
            url=relay.url, token=APP_TOKEN, flush_ms=20, sweep_interval=1.0, shutdown_timeout=1.0
        )
        worker = BridgeWorker(options, lock=LocalLeaderLock(), buffer=streams.get_stream_buffer())
        running = asyncio.create_task(worker.run())
        try:
            yield relay
        finally:
            worker.request_stop()
            try:
                await asyncio.wait_for(running, timeout=10)
            except TimeoutError:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)


async def stalled_run(body: str = "@stall go on") -> tuple[AgentRun, GroupListener]:
    """A run Relay accepted and whose agent then went silent, and its page's listener."""
    comment, listener = await post_watched_mention(body)
    [run] = await runs_for(comment)
    await wait_for(lambda: run_status(run.run_id) == Status.STREAMING, what="the stall run")
    return await sync_to_async(AgentRun.objects.get)(pk=run.pk), listener


async def say(relay: Any, run: AgentRun, frame: dict[str, Any]) -> None:
    """Put ``frame`` about ``run`` on the worker's connection, as Relay would."""
    message = json.dumps({"event_id": run.event_id, "agent_id": run.agent_id, **frame})
    assert await relay.raw.send(message, app_id=TEST_APP_ID) == 1


async def stream(relay: Any, run: AgentRun, deltas: tuple[str, ...]) -> None:
    for delta in deltas:
        await say(relay, run, {"type": "token", "token": delta})


def texts_shown(listener: GroupListener, run: AgentRun) -> str:
    return listener.streamed_text(str(run.run_id))


def page_session(username: str) -> str:
    user = get_user_model().objects.create_user(username, password="x")
    client = Client()
    client.force_login(user)
    return str(client.cookies[django_settings.SESSION_COOKIE_NAME].value)


async def snapshot_of_a_new_tab(run: AgentRun) -> dict[str, Any]:
    session = await sync_to_async(page_session)("newtab")
    task_id = await sync_to_async(lambda: run.comment.task_id)()
    headers = [
        (b"host", b"localhost"),
        (b"origin", b"http://localhost"),
        (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={session}".encode()),
    ]
    page = WebsocketCommunicator(application, f"/ws/tasks/{task_id}/", headers=headers)
    connected, _ = await page.connect()
    assert connected
    try:
        snapshot: dict[str, Any] = await page.receive_json_from(timeout=5)
    finally:
        await page.disconnect()
    assert snapshot["type"] == "snapshot"
    return snapshot


async def test_streamed_tokens_never_reach_a_page_or_a_new_tabs_snapshot(
    redis_stack: str,
) -> None:
    async with hostile_stack(redis_stack) as relay:
        run, listener = await stalled_run()
        await stream(relay, run, DELTAS)
        await wait_for(lambda: "Done" in texts_shown(listener, run), what="the last delta")
        pushed = [message["event"] for message in listener.messages]
        assert not leaks(pushed), pushed
        assert texts_shown(listener, run).endswith(SHOWN)
        snapshot = await snapshot_of_a_new_tab(run)
        [state] = [state for state in snapshot["runs"] if state["run"] == str(run.run_id)]
        assert state["text"].endswith(SHOWN)
        assert not leaks(snapshot), snapshot


async def test_stop_answers_and_keeps_only_redacted_text(redis_stack: str) -> None:
    async with hostile_stack(redis_stack) as relay:
        run, listener = await stalled_run()
        await stream(relay, run, (*DELTAS, " ", *CUT_SHORT))
        await wait_for(lambda: "Done" in texts_shown(listener, run), what="the deltas")
        client = Client()
        await sync_to_async(client.force_login)(
            # Staff may stop any run (the run here was asked by nobody in particular).
            await sync_to_async(get_user_model().objects.create_user)(
                "stopper", password="x", is_staff=True
            )
        )
        url = reverse("relaybridge:stop-run", args=[run.run_id])
        response = await sync_to_async(client.post)(url, HTTP_ACCEPT="application/json")
        assert response.status_code == 200
        answer = response.json()
        assert answer["status"] == Status.STOPPED
        assert not leaks(answer), answer
        assert SHOWN in answer["text"]
        stopped = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
        assert SHOWN in stopped.partial_text
        assert not leaks(stopped.partial_text), stopped.partial_text
        await wait_for(lambda: listener.events("run.status", str(run.run_id)), what="the stop")
        assert not leaks([message["event"] for message in listener.messages])


async def test_a_failed_run_keeps_no_token_in_its_text_error_or_log(
    redis_stack: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relaybridge")
    async with hostile_stack(redis_stack) as relay:
        run, listener = await stalled_run()
        # The run fails partway through the app token: the held part is blanked too.
        await stream(relay, run, (*DELTAS, " ", *CUT_SHORT))
        error = f"it broke on {APP_TOKEN} and {AGENT_TOKEN}"
        await say(relay, run, {"type": "error", "code": f"x{AGENT_TOKEN}", "error": error})
        await wait_for(lambda: run_status(run.run_id) == Status.FAILED, what="the failure")
        failed = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
        assert failed.partial_text.endswith(f"{SHOWN} So far: [redacted]")
        stored = [failed.partial_text, failed.error_code, failed.error_message]
        assert not leaks(stored), stored
        await wait_for(lambda: listener.events("run.error", str(run.run_id)), what="the error")
        pushed = [message["event"] for message in listener.messages]
        assert not leaks(pushed), pushed
        snapshot = await snapshot_of_a_new_tab(run)
        assert not leaks(snapshot), snapshot
    logged = [record.getMessage() for record in caplog.records]
    assert any("it broke on [redacted]" in line for line in logged)
    assert not leaks(logged), [line for line in logged if leaks(line)]


async def test_reply_metadata_is_redacted_and_bounded_and_the_reply_kept(
    redis_stack: str,
) -> None:
    async with hostile_stack(redis_stack) as relay:
        run, listener = await stalled_run()
        await stream(relay, run, DELTAS)
        metadata = {
            "tokens_used": 10**20,
            "latency_ms": -5,
            "model": f"gpt-x &#114;la_athena_4f9c2b7d {APP_TOKEN}",
        }
        reply = f"Answer: {DELTAS[0]}{DELTAS[1]}{DELTAS[2]}"
        await say(
            relay,
            run,
            {
                "type": "reply",
                "thread_id": run.thread_id,
                "reply": reply,
                "metadata": metadata,
                "done": True,
            },
        )
        await wait_for(lambda: listener.events("run.reply", str(run.run_id)), what="the reply")
        replied = await sync_to_async(AgentRun.objects.select_related("reply_comment").get)(
            pk=run.pk
        )
        assert replied.status == Status.REPLIED
        assert (replied.tokens_used, replied.relay_latency_ms) == (2**31 - 1, 0)
        assert replied.model_name == "gpt-x [redacted] [redacted]"
        pushed = [message["event"] for message in listener.messages]
        assert not leaks(pushed), pushed


async def test_a_discovered_name_cannot_pass_for_another_agent(redis_stack: str) -> None:
    async with hostile_stack(redis_stack) as relay:
        await wait_for(agents.get_directory, what="the first discovery")
        name = "\u202eAthena\u200b\u2066"
        frame = {"type": "agents", "agents": [{"agent_id": "stall", "name": name}]}
        assert await relay.raw.send(json.dumps(frame), app_id=TEST_APP_ID) == 1

        def rediscovered() -> list[agents.AgentInfo]:
            found = agents.get_directory()
            return found["agents"] if found is not None and len(found["agents"]) == 1 else []

        [listed] = await wait_for(rediscovered, what="the hostile discovery")
        assert listed["name"] == "Athena"
        assert agents.name_with_id("Athena", "stall") == "Athena (@stall)"
        client = Client()
        await sync_to_async(client.force_login)(
            await sync_to_async(get_user_model().objects.create_user)("writer", password="x")
        )
        url = reverse("relaybridge:mention-preview")
        answer = (await sync_to_async(client.post)(url, {"text": "@stall hi"})).json()
        assert answer["message"] == "Posting will call Athena (@stall)."
