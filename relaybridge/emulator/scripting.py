"""Runs a built-in agent's script as if the agent were connected to Relay.

The script's output becomes agent-side frames (``token``, ``reply`` with
``content``, ``error``) that enter the router by the same door as an external
agent's frames, so rewriting and terminal bookkeeping cannot differ between them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .agents import ScriptedAgent

if TYPE_CHECKING:
    from .events import OpenEvent
    from .router import Router

log = logging.getLogger(__name__)


class ScriptOutput:
    """The :class:`~relaybridge.emulator.agents.AgentOutput` of one scripted answer."""

    def __init__(self, router: Router, agent: ScriptedAgent, event_id: str) -> None:
        self._router = router
        self._agent = agent
        self._event_id = event_id

    async def _emit(self, frame: dict[str, Any]) -> None:
        await self._router.handle_agent_frame(
            self._agent.agent_id, {**frame, "event_id": self._event_id}
        )

    async def token(self, text: str) -> None:
        await self._emit({"type": "token", "token": text})

    async def reply(self, content: str, metadata: dict[str, Any]) -> None:
        await self._emit({"type": "reply", "content": content, "metadata": metadata, "done": True})

    async def error(self, code: str, message: str) -> None:
        await self._emit({"type": "error", "code": code, "error": message})

    async def pause(self, steps: float = 1.0) -> None:
        delay = self._router.config.delay_for(self._agent.agent_id, self._agent.delay_factor)
        await asyncio.sleep(delay * steps)


async def run_script(router: Router, agent: ScriptedAgent, event: OpenEvent) -> None:
    """Answer ``event`` with ``agent``; a crashing script becomes AGENT_ERROR, as on Relay."""
    try:
        await agent.answer(event.for_agent(), ScriptOutput(router, agent, event.event_id))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("built-in agent %s failed on %s", agent.agent_id, event.event_id)
        await router.fail_event(event, "AGENT_ERROR", "Agent crashed")
