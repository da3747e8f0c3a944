"""The stream sockets' bounds on real Daphne processes sharing Redis and PostgreSQL.

Two Daphne processes serve the example project: a person's sockets are counted across
both (the Django cache on Redis), a sign-out on one closes the socket held by the other
(the channel layer on Redis), and a malformed path or a foreign port is closed with its
code, where Daphne used to answer a malformed path with HTTP 500.
"""

from __future__ import annotations

import asyncio

import pytest
import websockets
from websockets.asyncio.client import ClientConnection

from relaybridge.consumers import (
    CLOSE_BAD_ORIGIN,
    CLOSE_BAD_THREAD,
    CLOSE_SESSION_ENDED,
    CLOSE_TOO_MANY_SOCKETS,
)
from tests.deployment.harness import Deployment

from .browsing import WebSession

pytestmark = [pytest.mark.slow, pytest.mark.redis, pytest.mark.postgres]

DEADLINE = 10.0


def ws_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1) + path


async def connect(base: str, path: str, cookie: str, origin: str | None = None) -> ClientConnection:
    return await websockets.connect(
        ws_url(base, path),
        origin=origin or base,  # type: ignore[arg-type]
        additional_headers={"Cookie": cookie},
        open_timeout=DEADLINE,
    )


async def snapshot(socket: ClientConnection) -> None:
    message = await asyncio.wait_for(socket.recv(), DEADLINE)
    assert '"snapshot"' in str(message)


async def close_code(socket: ClientConnection) -> int | None:
    """Wait (with the deadline) for the server's close; the code it sent."""
    async with asyncio.timeout(DEADLINE):
        while True:
            try:
                await socket.recv()
            except websockets.ConnectionClosed as closed:
                return closed.rcvd.code if closed.rcvd else None


def signed_in(base: str) -> WebSession:
    session = WebSession(base)
    session.sign_in("demo", "demo")
    return session


def cookie_of(session: WebSession) -> str:
    return "; ".join(f"{cookie.name}={cookie.value}" for cookie in session.cookies)


def test_two_daphnes_count_and_close_one_persons_sockets(deployment: Deployment) -> None:
    deployment.settings["RELAYBRIDGE_MAX_SOCKETS_PER_USER"] = "2"
    first, second = deployment.start_daphne(), deployment.start_daphne()
    assert deployment.manage("seed_demo").returncode == 0
    [(task_id,)] = deployment.query("SELECT id FROM tasks_task ORDER BY id LIMIT 1")
    path = f"/ws/tasks/{task_id}/"
    # Each session signs in on one process and watches through the other.
    laptop, phone = signed_in(second), signed_in(first)

    async def scenario() -> None:
        on_first = await connect(first, path, cookie_of(laptop))
        on_second = await connect(second, path, cookie_of(phone))
        await snapshot(on_first)
        await snapshot(on_second)
        # The third socket of the person is one too many, on either process.
        third = await connect(first, path, cookie_of(phone))
        assert await close_code(third) == CLOSE_TOO_MANY_SOCKETS

        # Signing the laptop out (on the second process) closes its socket on the first.
        token = await asyncio.to_thread(laptop.csrf_token, "/")
        await asyncio.to_thread(laptop.request, "/accounts/logout/", {"csrfmiddlewaretoken": token})
        assert await close_code(on_first) == CLOSE_SESSION_ENDED
        # ... and frees its place: the phone may open another.
        again = await connect(first, path, cookie_of(phone))
        await snapshot(again)
        await on_second.send('{"type": "ping"}')
        assert "pong" in str(await asyncio.wait_for(on_second.recv(), DEADLINE))
        await again.close()
        await on_second.close()

        # A malformed path is closed with its code, not answered with HTTP 500.
        for malformed in ("/ws/tasks/1", "/ws/tasks//", f"/ws/tasks/{task_id}/../2/"):
            refused = await connect(second, malformed, cookie_of(phone))
            assert await close_code(refused) == CLOSE_BAD_THREAD, malformed
        # The right host on another port is another origin.
        port = int(second.rsplit(":", 1)[1])
        foreign = await connect(second, path, cookie_of(phone), f"http://127.0.0.1:{port + 1}")
        assert await close_code(foreign) == CLOSE_BAD_ORIGIN

    asyncio.run(scenario())
