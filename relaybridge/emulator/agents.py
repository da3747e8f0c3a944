"""The built-in scripted agents: Relay's agents for local work, no external process.

An agent is a small class: an id, a name and description for discovery, a delay
factor, and an ``answer`` coroutine that writes to an :class:`AgentOutput`. The
output speaks the agent side of the protocol (§8), so a scripted agent's frames go
through exactly the same rewriting and bookkeeping as an external agent's.

``athena`` and ``klyve`` behave; the others misbehave on purpose so that clients
can be tested against every failure Relay documents.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from .frames import JsonObject

_TOKEN_RE = re.compile(r"\s*\S+|\s+$")


def split_tokens(text: str) -> list[str]:
    """Word tokens that carry their own leading whitespace; ``"".join`` restores ``text``."""
    return _TOKEN_RE.findall(text)


@dataclass(frozen=True)
class AgentEvent:
    """An event as an agent sees it (protocol §8)."""

    event_id: str
    app_id: str
    thread_id: str
    session_key: str
    payload: JsonObject
    received_at: float

    def elapsed_ms(self) -> int:
        return int((time.monotonic() - self.received_at) * 1000)


class AgentOutput(Protocol):
    """Where a scripted agent writes its answer."""

    async def token(self, text: str) -> None: ...

    async def reply(self, content: str, metadata: dict[str, Any]) -> None: ...

    async def error(self, code: str, message: str) -> None: ...

    async def pause(self, steps: float = 1.0) -> None:
        """Wait ``steps`` token intervals of this agent."""


class ScriptedAgent:
    """Base class of a built-in agent; subclasses set the class attributes and ``answer``."""

    agent_id: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]
    #: Multiplies the emulator's token delay for this agent.
    delay_factor: ClassVar[float] = 1.0
    #: An agent that never answers: events for it are refused with AGENT_OFFLINE.
    always_offline: ClassVar[bool] = False

    def describe(self) -> JsonObject:
        return {"agent_id": self.agent_id, "name": self.name, "description": self.description}

    async def answer(self, event: AgentEvent, out: AgentOutput) -> None:
        raise NotImplementedError

    async def stream(self, out: AgentOutput, text: str) -> int:
        """Send ``text`` word by word, one pause apart; return the number of tokens."""
        tokens = split_tokens(text)
        for index, token in enumerate(tokens):
            if index:
                await out.pause()
            await out.token(token)
        return len(tokens)

    def metadata(self, event: AgentEvent, tokens: int) -> dict[str, Any]:
        return {
            "tokens_used": tokens,
            "model": f"emulator-{self.agent_id}",
            "latency_ms": event.elapsed_ms(),
        }


def _text(value: Any) -> str:
    """A single-line version of a payload string; anything else becomes ``""``."""
    return " ".join(value.split()) if isinstance(value, str) else ""


def summarize(payload: JsonObject) -> str:
    """Athena's deterministic, readable summary of a mention payload."""
    title = _text(payload.get("task_title")) or _text(payload.get("title"))
    message = _text(payload.get("message"))
    sender = payload.get("sender")
    sender_name = _text(sender.get("name")) if isinstance(sender, dict) else ""
    comments = payload.get("comments")
    comments = comments if isinstance(comments, list) else []

    parts = [f'Summary of "{title}".' if title else "Summary of this thread."]
    if message:
        parts.append(f'{sender_name or "You"} asked: "{message}".')
    if not comments:
        parts.append("There are no earlier comments.")
    else:
        noun = "comment" if len(comments) == 1 else "comments"
        latest = comments[-1]
        author = _text(latest.get("author")) if isinstance(latest, dict) else ""
        by = f", the latest by {author}" if author else ""
        parts.append(f"The thread has {len(comments)} {noun}{by}.")
    parts.append("This answer comes from the local Relay emulator.")
    return " ".join(parts)


class Athena(ScriptedAgent):
    agent_id = "athena"
    name = "Athena"
    description = "Personal EA: summarizes the task and its thread"

    async def answer(self, event: AgentEvent, out: AgentOutput) -> None:
        text = summarize(event.payload)
        tokens = await self.stream(out, text)
        await out.reply(text, self.metadata(event, tokens))


class Klyve(ScriptedAgent):
    agent_id = "klyve"
    name = "Klyve"
    description = "Echo agent: repeats the message it was sent"

    async def answer(self, event: AgentEvent, out: AgentOutput) -> None:
        message = event.payload.get("message")
        text = message if isinstance(message, str) and message else "(no message)"
        tokens = await self.stream(out, text)
        await out.reply(text, self.metadata(event, tokens))


class Offline(ScriptedAgent):
    agent_id = "offline"
    name = "Offline"
    description = "Never connected: every event is refused with AGENT_OFFLINE"
    always_offline = True

    async def answer(self, event: AgentEvent, out: AgentOutput) -> None:
        # Never dispatched to (it is never online); answer sensibly if a subclass
        # or a test makes it reachable anyway.
        await out.error("AGENT_ERROR", "The offline agent cannot answer")


class Broken(ScriptedAgent):
    agent_id = "broken"
    name = "Broken"
    description = "Starts answering, then fails with AGENT_ERROR"

    async def answer(self, event: AgentEvent, out: AgentOutput) -> None:
        await self.stream(out, "Let me look")
        await out.pause()
        await out.error("AGENT_ERROR", "Agent crashed while answering")


class Sleepy(ScriptedAgent):
    agent_id = "sleepy"
    name = "Sleepy"
    description = "Thinks for a while, then gives up with AGENT_TIMEOUT"

    async def answer(self, event: AgentEvent, out: AgentOutput) -> None:
        await out.pause(5)
        await out.error("AGENT_TIMEOUT", "Agent did not answer in time")


class Stall(ScriptedAgent):
    agent_id = "stall"
    name = "Stall"
    description = "Streams a few words, then goes silent forever"

    async def answer(self, event: AgentEvent, out: AgentOutput) -> None:
        await self.stream(out, "I am working on it")
        # Never finishes: a client's watchdog (or the emulator's event timeout) must.
        await asyncio.Event().wait()


class Slow(ScriptedAgent):
    agent_id = "slow"
    name = "Slow"
    description = "Answers correctly, about one word per second"
    delay_factor = 1000 / 30  # ≈ 1 s per token at the default 30 ms delay

    async def answer(self, event: AgentEvent, out: AgentOutput) -> None:
        text = "Sorry for the wait, here is my slow answer."
        tokens = await self.stream(out, text)
        await out.reply(text, self.metadata(event, tokens))


BUILTIN_AGENT_CLASSES: tuple[type[ScriptedAgent], ...] = (
    Athena,
    Klyve,
    Offline,
    Broken,
    Sleepy,
    Stall,
    Slow,
)


def builtin_agents(only: Iterable[str] | None = None) -> dict[str, ScriptedAgent]:
    """Fresh instances of the built-in agents, by id (optionally only some ids)."""
    wanted = None if only is None else set(only)
    return {
        cls.agent_id: cls()
        for cls in BUILTIN_AGENT_CLASSES
        if wanted is None or cls.agent_id in wanted
    }
