"""The pattern of Relay's own code examples, as a Celery task of the benchmark stack.

A comment is saved, a task is queued, and the task opens a connection to Relay,
sends the event, waits for ``accepted`` and closes. The Celery worker of the
benchmark stack imports this module (``CELERY_IMPORTS`` in :mod:`bench.settings`);
the task writes when each step happened (wall-clock ns) to the stack's Redis for
the driver to read. It uses the baseline app, so its events never reach the relay
worker, and it verifies Relay's certificate as the relay worker does.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import time
from typing import Any

import redis
from celery import shared_task
from websockets.asyncio.client import connect

from relaybridge.emulator.load import LOAD_AGENT_ID

TASK_NAME = "bench.accept_per_connection"
RESULT_KEY = "bench:per-connection:{key}"
RESULT_TTL_S = 600


async def connect_send_accept(
    url: str, token: str, thread_id: str, ca_file: str | None
) -> dict[str, int]:
    """One event on a connection of its own; when it started, connected and was accepted."""
    started = time.time_ns()
    options: dict[str, Any] = {}
    if url.startswith("wss://"):
        options["ssl"] = ssl.create_default_context(cafile=ca_file)
    async with connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        ping_interval=None,
        proxy=None,
        **options,
    ) as conn:
        connected = time.time_ns()
        payload = {"event": "comment.mention", "message": "@load tokens=1 rate=1000"}
        frame = {"type": "event", "agent_id": LOAD_AGENT_ID, "thread_id": thread_id}
        await conn.send(json.dumps({**frame, "payload": payload}))
        async for message in conn:
            kind = json.loads(message).get("type")
            if kind == "accepted":
                break
            if kind == "error":
                raise RuntimeError(f"Relay refused the event: {message!r}")
        accepted = time.time_ns()
    return {"task_started_ns": started, "connected_ns": connected, "accepted_ns": accepted}


@shared_task(name=TASK_NAME, ignore_result=True)
def accept_per_connection(
    key: str, url: str, token: str, thread_id: str, ca_file: str | None
) -> None:
    try:
        times: dict[str, Any] = asyncio.run(connect_send_accept(url, token, thread_id, ca_file))
    except Exception as exc:  # the driver reports it instead of waiting in vain
        times = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    try:
        client.set(RESULT_KEY.format(key=key), json.dumps(times), ex=RESULT_TTL_S)
    finally:
        client.close()
