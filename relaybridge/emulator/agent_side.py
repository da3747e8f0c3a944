"""The agent endpoint, ``/v1/ws/agent``: external agents connected with ``rla_`` tokens.

A connected agent answers events in place of a built-in agent of the same id.
Relay pings each agent connection with a JSON ``ping`` frame; agents answer
``pong``. A connection that sends nothing for ``agent_pong_timeout_s`` after a ping
is dropped, and when that leaves the agent without a connection its open events
fail with ``AGENT_OFFLINE`` (an agent that merely reconnects keeps them). Frames
for an open event are accepted from any connection of the agent, so an agent may
drop and reconnect in the middle of an answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from . import frames
from .router import Router

log = logging.getLogger(__name__)


async def serve_agent(conn: ServerConnection, agent_id: str, router: Router) -> None:
    router.agents.add(agent_id, conn)
    log.info("agent %s connected", agent_id)
    heard = [time.monotonic()]
    pinger = asyncio.create_task(_ping_forever(conn, agent_id, router, heard))
    # Events held while the agent was away go to it now.
    router.wake(agent_id)
    try:
        async for message in conn:
            heard[0] = time.monotonic()
            await _handle(conn, agent_id, router, message)
    except ConnectionClosed:
        pass
    finally:
        pinger.cancel()
        router.agents.remove(agent_id, conn)
        log.info("agent %s disconnected", agent_id)


async def _handle(
    conn: ServerConnection, agent_id: str, router: Router, message: str | bytes
) -> None:
    try:
        frame: Any = json.loads(message)
    except ValueError:
        frame = None
    if not isinstance(frame, dict):
        router.stats.frames_dropped += 1
        log.warning("agent %s sent a frame that is not a JSON object", agent_id)
        return
    kind = frame.get("type")
    if kind == "ping":
        await conn.send(frames.encode(frames.PONG))
    elif kind == "pong":
        router.stats.agent_pongs += 1
    else:
        await router.handle_agent_frame(agent_id, frame)


async def _ping_forever(
    conn: ServerConnection, agent_id: str, router: Router, heard: list[float]
) -> None:
    interval = router.config.agent_ping_interval_s
    timeout = router.config.agent_pong_timeout_s
    try:
        while True:
            await asyncio.sleep(interval)
            pinged = time.monotonic()
            await conn.send(frames.encode(frames.PING))
            router.stats.agent_pings_sent += 1
            if timeout is None:
                continue
            await asyncio.sleep(timeout)
            if heard[0] < pinged:
                log.warning("agent %s did not answer a ping; dropped", agent_id)
                router.stats.agents_dropped += 1
                router.agents.remove(agent_id, conn)
                await router.agent_gone(agent_id)
                conn.transport.abort()
                return
    except ConnectionClosed:
        pass
