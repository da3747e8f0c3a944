"""The load agent: a built-in agent that streams at a chosen rate, for benchmarks.

``load`` answers every event with ``tokens`` tokens at ``rate`` tokens per second,
then replies with their concatenation. At most ``concurrency`` answers stream at
once (0: no cap); further events wait for a free slot, as they would for a busy
agent. The emulator's ``--load-*`` options set the defaults; an event may override
``tokens`` and ``rate`` in its payload (``load_tokens``/``load_rate`` keys, or
``tokens=N rate=R`` in the ``message``), so one emulator serves every scenario.
An event may also name a wall-clock start (``load_start_ns`` or ``start=NS``): its
answer waits until then, so that many runs dispatched one after another stream at
the same time and the aggregate rate is the one asked for.

**Every token carries its own send time.** A token reads ``" <index>@<ns>"``:
its position in the answer and ``time.time_ns()`` taken just before the frame is
handed to the router. Benchmarks measure delivery delay across processes (the
emulator, the relay worker, Daphne, a subscriber) without sharing anything but the
machine's wall clock: whoever receives the text subtracts the stamp from its own
``time.time_ns()``. Coalesced text holds several stamps; each is parsed on its own
(:func:`parse_stamps`), so a token's delay includes the time it waited to be
coalesced. The index lets a receiver count lost or doubled tokens.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from typing import Any

from .agents import AgentEvent, AgentOutput, ScriptedAgent

LOAD_AGENT_ID = "load"
#: Shortest sleep between two sends of one answer. A faster rate sends the tokens
#: that fell due meanwhile back to back (each still stamped when it is sent), so a
#: high aggregate rate does not cost one timer wake-up per token.
MIN_TICK_S = 0.002

_STAMP_RE = re.compile(r"(\d+)@(\d+)")
_OPTION_RE = re.compile(r"\b(tokens|rate|start)=(\d+(?:\.\d+)?)\b")


def stamp(index: int, now_ns: int | None = None) -> str:
    """The text of token ``index``: a space, the index, ``@``, the send time in ns."""
    return f" {index}@{time.time_ns() if now_ns is None else now_ns}"


def parse_stamps(text: str) -> list[tuple[int, int]]:
    """Every ``(index, sent_ns)`` stamped in ``text``, in order."""
    return [(int(index), int(sent)) for index, sent in _STAMP_RE.findall(text)]


@dataclass(frozen=True)
class LoadProfile:
    """The load agent's defaults: answer length, tokens per second, concurrent answers."""

    tokens: int = 100
    rate: float = 20.0
    concurrency: int = 0

    def __post_init__(self) -> None:
        if self.tokens < 1 or self.rate <= 0 or self.concurrency < 0:
            raise ValueError("load agent: tokens >= 1, rate > 0 and concurrency >= 0")

    def for_payload(self, payload: dict[str, Any]) -> tuple[int, float, int]:
        """``(tokens, rate, start ns or 0)`` for one event: its overrides, else the defaults."""
        options: dict[str, str] = {}
        message = payload.get("message")
        if isinstance(message, str):
            options = dict(_OPTION_RE.findall(message))
        tokens = _number(payload.get("load_tokens"), options.get("tokens"), self.tokens)
        rate = _number(payload.get("load_rate"), options.get("rate"), self.rate)
        start = _number(payload.get("load_start_ns"), options.get("start"), 0)
        return max(1, int(tokens)), max(0.001, float(rate)), int(start)


def _number(value: Any, text: str | None, default: float) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    if text is not None and float(text) > 0:
        return float(text)
    return default


class LoadAgent(ScriptedAgent):
    agent_id = LOAD_AGENT_ID
    name = "Load"
    description = "Benchmark agent: streams time-stamped tokens at a set rate"

    def __init__(self, profile: LoadProfile | None = None) -> None:
        self.profile = profile or LoadProfile()
        self._slots: asyncio.Semaphore | None = None

    async def answer(self, event: AgentEvent, out: AgentOutput) -> None:
        tokens, rate, start_ns = self.profile.for_payload(event.payload)
        if start_ns:
            await asyncio.sleep(max(0.0, (start_ns - time.time_ns()) / 1e9))
        if self.profile.concurrency:
            if self._slots is None:
                self._slots = asyncio.Semaphore(self.profile.concurrency)
            async with self._slots:
                text = await self._stream(out, tokens, rate)
        else:
            text = await self._stream(out, tokens, rate)
        await out.reply(text, self.metadata(event, tokens))

    async def _stream(self, out: AgentOutput, tokens: int, rate: float) -> str:
        loop = asyncio.get_running_loop()
        start = loop.time()
        parts: list[str] = []
        while len(parts) < tokens:
            # Token n is due at start + n / rate; send everything due by now.
            due = min(tokens, 1 + int((loop.time() - start) * rate))
            while len(parts) < due:
                token = stamp(len(parts))
                parts.append(token)
                await out.token(token)
            if len(parts) < tokens:
                wait = start + len(parts) / rate - loop.time()
                await asyncio.sleep(max(MIN_TICK_S, wait))
        return "".join(parts)
