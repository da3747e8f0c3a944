"""An in-process relay stack for integration tests.

The worker runs in the test's event loop against a real emulator on a loopback
port, a real Redis (channel layer, stream buffer) and the test database; Celery
runs eagerly, so a saved comment reaches the worker's intake exactly as in
production, through the channel layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from asgiref.sync import sync_to_async

from project.tasks.models import Comment, Task
from relaybridge.buffers import RedisStreamBuffer
from relaybridge.models import AgentRun
from relaybridge.streams import group_name_for_thread
from relaybridge.testing import running_emulator
from relaybridge.worker.bridge import BridgeWorker, WorkerOptions
from relaybridge.worker.leader import LocalLeaderLock
from tests.stacks import stream_layer


@dataclass
class GroupListener:
    """Collects every message pushed to one thread's group."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def events(self, kind: str, run: str | None = None) -> list[dict[str, Any]]:
        found = [m["event"] for m in self.messages if m["event"]["type"] == kind]
        return [e for e in found if run is None or e.get("run") == run]

    def streamed_text(self, run: str) -> str:
        deltas = self.events("run.delta", run)
        assert [d["seq"] for d in deltas] == list(range(1, len(deltas) + 1)), "deltas out of order"
        return "".join(d["text"] for d in deltas)


async def listen(thread_key: str) -> GroupListener:
    layer = stream_layer()
    channel = await layer.new_channel()
    await layer.group_add(group_name_for_thread(thread_key), channel)
    listener = GroupListener()

    async def collect() -> None:
        while True:
            listener.messages.append(await layer.receive(channel))

    listener.task = asyncio.create_task(collect())
    return listener


async def post_mention(
    body: str, title: str = "Q2 Roadmap Review", task: Task | None = None
) -> Any:
    """Save a comment (on a new task, or on ``task``); returns the comment."""

    def save() -> Comment:
        target = task or Task.objects.create(title=title)
        return Comment.objects.create(task=target, body=body)

    return await sync_to_async(save)()


async def post_watched_mention(
    body: str, title: str = "Q2 Roadmap Review"
) -> tuple[Comment, GroupListener]:
    """Like :func:`post_mention` on a new task, with a listener on the task's group
    from before the comment exists: its first deltas can go out at once."""
    from relaybridge.adapters import get_adapter

    task = await sync_to_async(Task.objects.create)(title=title)
    listener = await listen(await sync_to_async(get_adapter().thread_key)(task))
    return await post_mention(body, task=task), listener


def accepted_run(title: str) -> AgentRun:
    """A run of a new task's mention that Relay has accepted (call in a thread)."""
    from relaybridge import services

    task = Task.objects.create(title=title)
    comment = Comment.objects.create(task=task, body="@athena go")
    run = AgentRun.objects.get(comment=comment)
    services.claim_for_sending(run.run_id)
    services.mark_accepted(run.run_id, f"evt_{uuid.uuid4().hex[:8]}")
    return AgentRun.objects.get(pk=run.pk)


async def runs_for(comment: Comment) -> list[AgentRun]:
    return await sync_to_async(lambda: list(AgentRun.objects.filter(comment=comment)))()


async def wait_for(
    predicate: Callable[[], Any], within: float = 10.0, what: str = "condition"
) -> Any:
    """Poll ``predicate`` (sync, run in a thread) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = await sync_to_async(predicate)()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        await asyncio.sleep(0.05)


def run_status(run_id: Any) -> str:
    return AgentRun.objects.get(run_id=run_id).status


def ended(*statuses: str) -> Callable[[Any], Callable[[], bool]]:
    def check(run_id: Any) -> Callable[[], bool]:
        return lambda: run_status(run_id) in statuses

    return check


@contextlib.asynccontextmanager
async def relay_stack(
    redis_url: str, *, emulator: dict[str, Any] | None = None, **options: Any
) -> AsyncIterator[tuple[BridgeWorker, Any]]:
    """Run the emulator and a BridgeWorker; yields (worker, emulator)."""
    async with running_emulator(**(emulator or {})) as relay:
        defaults: dict[str, Any] = {"flush_ms": 20, "sweep_interval": 1.0}
        worker_options = WorkerOptions(url=relay.url, token=relay.app_token, **defaults | options)
        buffer = RedisStreamBuffer(
            aioredis.Redis.from_url(redis_url), prefix=f"relaybridge-test:{uuid.uuid4()}"
        )
        worker = BridgeWorker(worker_options, lock=LocalLeaderLock(), buffer=buffer)
        running = asyncio.create_task(worker.run())
        try:
            yield worker, relay
        finally:
            worker.request_stop()
            try:
                await asyncio.wait_for(running, timeout=10)
            except TimeoutError:
                running.cancel()
                await asyncio.gather(running, return_exceptions=True)
