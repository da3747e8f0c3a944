"""The app endpoint, ``/v1/ws/app``: one coroutine per authenticated app connection.

Each frame is answered completely before the next one is read. In particular an
``event`` gets its single ``accepted`` (or null-event ``error``) before the
emulator looks at the following frame, which is what lets clients correlate
answers with submissions in FIFO order (protocol §6). Dispatch to the agent
happens only after ``accepted`` is on the wire, so no token can overtake it.
"""

from __future__ import annotations

import asyncio
import logging
import time

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from . import frames
from .router import Router
from .validation import Refusal, parse_app_frame, validate_event

log = logging.getLogger(__name__)


async def serve_app(conn: ServerConnection, app_id: str, router: Router) -> None:
    router.apps.add(app_id, conn)
    log.info("app %s connected", app_id)
    heard = [time.monotonic()]
    pinger = asyncio.create_task(_ping_forever(conn, app_id, router, heard))
    try:
        async for message in conn:
            heard[0] = time.monotonic()
            await handle_app_message(conn, app_id, router, message)
    except ConnectionClosed:
        pass
    finally:
        pinger.cancel()
        router.apps.remove(app_id, conn)
        log.info("app %s disconnected", app_id)


async def _ping_forever(
    conn: ServerConnection, app_id: str, router: Router, heard: list[float]
) -> None:
    """Ping the app now and then; close a connection that no longer answers."""
    interval = router.config.app_ping_interval_s
    if interval is None:
        return
    try:
        while True:
            await asyncio.sleep(interval)
            pinged = time.monotonic()
            await _send(conn, frames.PING)
            router.stats.app_pings_sent += 1
            await asyncio.sleep(router.config.app_pong_timeout_s)
            if heard[0] < pinged:
                log.warning("app %s did not answer a ping; connection closed", app_id)
                router.stats.apps_dropped += 1
                conn.transport.abort()
                return
    except ConnectionClosed:
        pass


async def _send(conn: ServerConnection, frame: frames.JsonObject) -> None:
    await conn.send(frames.encode(frame))


async def _refuse(conn: ServerConnection, refusal: Refusal) -> None:
    await _send(conn, frames.error_frame(refusal.code, refusal.message, agent_id=refusal.agent_id))


async def handle_app_message(
    conn: ServerConnection, app_id: str, router: Router, message: str | bytes
) -> None:
    frame = parse_app_frame(message)
    if isinstance(frame, Refusal):
        await _refuse(conn, frame)
        return
    kind = frame["type"]
    if kind == "ping":
        await _send(conn, frames.PONG)
    elif kind == "discover":
        await _send(conn, frames.agents_frame(router.discoverable(app_id)))
    elif kind == "event":
        request = validate_event(frame)
        if isinstance(request, Refusal):
            router.stats.events_refused += 1
            await _refuse(conn, request)
            return
        event = router.submit(app_id, request, origin=conn)
        if isinstance(event, Refusal):
            await _refuse(conn, event)
            return
        accepted = frames.accepted_frame(event.event_id, event.agent_id, event.session_key)
        await _send(conn, accepted)
        for _ in range(router.faults.extra_copies("accepted")):  # an injected duplicate
            await _send(conn, accepted)
        await router.dispatch(event)
    # "pong" needs no answer.
