"""The baseline clients: plain Relay app clients talking to the emulator directly.

:func:`stream_direct` reads the load agent's token frames on one connection (the
added-latency and throughput baselines); :func:`accept_per_connection` follows
Relay's own code examples, a new connection per event (the mention baseline).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from relaybridge.emulator.load import LOAD_AGENT_ID

from .clients import TokenLog


async def _open_app(url: str, token: str) -> ClientConnection:
    return await connect(
        url,
        additional_headers={"Authorization": f"Bearer {token}"},
        ping_interval=None,
        max_size=None,
        proxy=None,
    )


def event_frame(thread_id: str, **load: Any) -> str:
    payload = {"event": "comment.mention", "message": "@load benchmark", **load}
    frame = {"type": "event", "agent_id": LOAD_AGENT_ID, "thread_id": thread_id, "payload": payload}
    return json.dumps(frame)


async def stream_direct(
    url: str,
    token: str,
    *,
    runs: int,
    tokens: int,
    rate: float,
    start_ns: int | list[int],
    seconds: float,
) -> TokenLog:
    """``runs`` events on one app connection; every token frame's delay, as received.

    ``start_ns``: when the load agent starts answering (one for all, or one per run).
    """
    starts = start_ns if isinstance(start_ns, list) else [start_ns] * runs
    log = TokenLog()
    received: list[tuple[int, str | bytes]] = []
    conn = await _open_app(url, token)
    try:
        for n in range(runs):
            await conn.send(
                event_frame(
                    f"baseline-{n}", load_tokens=tokens, load_rate=rate, load_start_ns=starts[n]
                )
            )
        ended = 0
        async with asyncio.timeout(seconds):
            async for message in conn:
                received.append((time.time_ns(), message))
                if isinstance(message, str) and '"type": "token"' not in message:
                    frame = json.loads(message)
                    if frame.get("type") in {"reply", "error"}:
                        ended += 1
                        if ended >= runs:
                            break
    except TimeoutError:
        pass
    finally:
        await conn.close()
    for arrived, message in received:
        frame = json.loads(message)
        if frame.get("type") == "token":
            log.add(frame["event_id"], frame["token"], arrived)
    return log


async def accept_per_connection(
    url: str, token: str, *, concurrency: int, count: int
) -> tuple[list[float], float]:
    """Relay's sample pattern: connect, send one event, wait for ``accepted``, close.

    ``concurrency`` loops share ``count`` events. Returns each event's time from
    starting to connect until ``accepted`` arrived (ms), and events per second.
    """
    latencies: list[float] = []
    remaining = iter(range(count))

    async def one_loop() -> None:
        for n in remaining:
            started = time.perf_counter()
            async with await _open_app(url, token) as conn:
                await conn.send(event_frame(f"per-connection-{n}", load_tokens=1))
                async for message in conn:
                    if json.loads(message).get("type") in {"accepted", "error"}:
                        break
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(one_loop() for _ in range(concurrency)))
    return latencies, count / (time.perf_counter() - began)
