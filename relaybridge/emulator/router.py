"""Events from acceptance to their terminal frame: routing, dispatch, bookkeeping.

The router owns every open event. An event is *open* from its ``accepted`` frame
until its first terminal frame (``reply`` or ``error``); after that it is
forgotten, so anything an agent sends later for it is dropped (protocol §8).
Agent frames are rewritten for the app here, whether they came from an external
agent's socket or from a built-in script.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Coroutine
from typing import Any

from websockets.asyncio.server import ServerConnection

from . import frames
from .agents import ScriptedAgent
from .config import EmulatorConfig
from .connections import Connections
from .events import OpenEvent, Stats, new_event_id
from .faults import Faults, InjectedFailure
from .limits import AppLimiter
from .scripting import run_script
from .validation import EventRequest, Refusal

log = logging.getLogger(__name__)

#: Frames that end an event (after one of them, nothing more is sent for it).
TERMINAL_TYPES = frozenset({"reply", "error"})
#: The injected second reply: different text, so a client that saved it is caught.
SECOND_REPLY_TEXT = "A second reply to an event that already ended."
SECOND_REPLY_DELAY_S = 0.05


class Router:
    """One Relay's routing state: connections, open and queued events, limits, faults."""

    def __init__(
        self, config: EmulatorConfig, agents: dict[str, ScriptedAgent], faults: Faults
    ) -> None:
        self.config = config
        self.builtins = agents
        self.faults = faults
        self.external_agent_ids = set(config.agent_tokens.values())
        self.allowed: dict[str, frozenset[str]] = dict(config.allowed_agents)
        self.apps = Connections()
        self.agents = Connections()
        self.events: dict[str, OpenEvent] = {}
        self.stats = Stats()
        self._queued: dict[str, deque[OpenEvent]] = {}
        self._limiters: dict[str, AppLimiter] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._delivery_locks: dict[str, asyncio.Lock] = {}
        if config.delivery_faults.active:
            faults.set_delivery(config.delivery_faults)

    # -- who exists, who may be reached, who is online -------------------------------

    def known_agent_ids(self) -> list[str]:
        externals = sorted(self.external_agent_ids - set(self.builtins))
        return [*self.builtins, *externals]

    def may_reach(self, app_id: str, agent_id: str) -> bool:
        allowed = self.allowed.get(app_id)
        return allowed is None or agent_id in allowed

    def discoverable(self, app_id: str) -> list[frames.JsonObject]:
        """The ``agents`` list for one app: whom it may reach, without presence."""
        listed = []
        for agent_id in self.known_agent_ids():
            if not self.may_reach(app_id, agent_id):
                continue
            builtin = self.builtins.get(agent_id)
            if builtin is not None:
                listed.append(builtin.describe())
            else:
                listed.append(
                    {"agent_id": agent_id, "name": agent_id, "description": "External agent"}
                )
        return listed

    def is_online(self, agent_id: str) -> bool:
        if agent_id in self.faults.forced_offline:
            return False
        if self.agents.connected(agent_id):
            return True
        builtin = self.builtins.get(agent_id)
        return builtin is not None and not builtin.always_offline

    def limiter(self, app_id: str) -> AppLimiter:
        if app_id not in self._limiters:
            self._limiters[app_id] = AppLimiter(self.config.plan, self.config.clock)
        return self._limiters[app_id]

    # -- app side ---------------------------------------------------------------------

    def submit(
        self, app_id: str, request: EventRequest, origin: ServerConnection | None
    ) -> OpenEvent | Refusal:
        """Routing checks, in order, after validation; opens the event if all pass."""
        agent_id = request.agent_id
        refusal, injected = self._routing_checks(app_id, agent_id)
        if refusal is not None:
            self.stats.events_refused += 1
            log.info("refused event from app %s for %s: %s", app_id, agent_id, refusal.code)
            return refusal
        event = OpenEvent(
            event_id=new_event_id(),
            app_id=app_id,
            agent_id=agent_id,
            thread_id=request.thread_id,
            payload=request.payload,
            origin=origin,
            injected=injected,
        )
        self.limiter(app_id).accept()
        self.events[event.event_id] = event
        self.stats.events_accepted += 1
        if self.config.event_timeout_s is not None:
            event.timer = asyncio.get_running_loop().call_later(
                self.config.event_timeout_s, self._on_timeout, event
            )
        log.info("accepted %s from app %s for %s", event.event_id, app_id, agent_id)
        return event

    def _routing_checks(
        self, app_id: str, agent_id: str
    ) -> tuple[Refusal | None, InjectedFailure | None]:
        """The refusal for this event, if any, and an injected failure to apply after accepting.

        Order: unknown agent (AGENT_NOT_FOUND), not on the app's allow list
        (NOT_ALLOWED), rate windows or in-flight cap (RATE_LIMITED), an injected
        failure, then presence (AGENT_OFFLINE, unless offline events are queued).
        """
        if agent_id not in self.builtins and agent_id not in self.external_agent_ids:
            return Refusal("AGENT_NOT_FOUND", f"Agent not found: {agent_id[:64]}", agent_id), None
        if not self.may_reach(app_id, agent_id):
            refusal = Refusal("NOT_ALLOWED", "This app is not allowed to reach the agent", agent_id)
            return refusal, None
        reason = self.limiter(app_id).refusal()
        if reason is not None:
            return Refusal("RATE_LIMITED", reason, agent_id), None
        failure = self.faults.take_failure(agent_id)
        if failure is not None:
            if failure.after_accept:
                return None, failure
            return Refusal(failure.code, failure.message, agent_id), None
        if not self.is_online(agent_id) and not self.config.queue_offline:
            return Refusal("AGENT_OFFLINE", "Agent not connected", agent_id), None
        return None, None

    async def dispatch(self, event: OpenEvent) -> None:
        """Hand an accepted event to its agent (call only after ``accepted`` was sent)."""
        if event.event_id not in self.events:
            return
        if event.injected is not None:
            await self.fail_event(event, event.injected.code, event.injected.message)
            return
        agent_id = event.agent_id
        if not self.is_online(agent_id):
            log.info("queued %s until %s is online", event.event_id, agent_id)
            self._queued.setdefault(agent_id, deque()).append(event)
            return
        if self.agents.connected(agent_id):
            frame = frames.agent_event_frame(
                event_id=event.event_id,
                app_id=event.app_id,
                thread_id=event.thread_id,
                payload=event.payload,
            )
            if not await self.agents.send(agent_id, frame):
                self._queued.setdefault(agent_id, deque()).append(event)
            return
        self._start_script(self.builtins[agent_id], event)

    async def flush_queue(self, agent_id: str) -> None:
        """Dispatch events held for ``agent_id`` now that it may be online."""
        queue = self._queued.pop(agent_id, deque())
        while queue:
            await self.dispatch(queue.popleft())

    def wake(self, agent_id: str) -> None:
        self.spawn(self.flush_queue(agent_id))

    # -- agent side -------------------------------------------------------------------

    async def handle_agent_frame(self, agent_id: str, frame: frames.JsonObject) -> None:
        """A ``token``, ``reply`` or ``error`` from any connection (or script) of an agent."""
        event_id = frame.get("event_id")
        event = self.events.get(event_id) if isinstance(event_id, str) else None
        kind = frame.get("type")
        if event is None or event.agent_id != agent_id or kind not in {"token", "reply", "error"}:
            self.stats.frames_dropped += 1
            log.debug("dropped %s frame from %s (no open event)", kind, agent_id)
            return
        if kind == "token":
            token = frame.get("token")
            if isinstance(token, str):
                await self._deliver(event, frames.token_frame(event.event_id, agent_id, token))
            return
        if kind == "reply":
            text = frame.get("content", frame.get("reply"))
            meta = frame.get("metadata")
            self._finish(event)
            await self._deliver(
                event,
                frames.reply_frame(
                    event_id=event.event_id,
                    agent_id=agent_id,
                    thread_id=event.thread_id,
                    text=text if isinstance(text, str) else "",
                    payload=event.payload,
                    metadata=meta if isinstance(meta, dict) else {},
                    key=event.session_key,
                ),
            )
            return
        code, message = frame.get("code"), frame.get("error")
        await self.fail_event(
            event,
            code if isinstance(code, str) and code else "AGENT_ERROR",
            message if isinstance(message, str) else "Agent error",
        )

    async def agent_gone(self, agent_id: str) -> None:
        """An agent was dropped (it stopped answering pings): with no connection of it
        left, its open events fail with AGENT_OFFLINE instead of waiting forever."""
        if self.agents.connected(agent_id):
            return
        for event in [e for e in self.events.values() if e.agent_id == agent_id]:
            await self.fail_event(event, "AGENT_OFFLINE", "Agent stopped answering pings")

    async def fail_event(self, event: OpenEvent, code: str, message: str) -> None:
        """End an open event with an error carrying its event_id."""
        if event.event_id not in self.events:
            return
        self._finish(event)
        log.info("%s failed: %s", event.event_id, code)
        await self._deliver(
            event,
            frames.error_frame(code, message, event_id=event.event_id, agent_id=event.agent_id),
        )

    # -- internals --------------------------------------------------------------------

    async def _deliver(self, event: OpenEvent, frame: frames.JsonObject) -> None:
        kind = frame.get("type")
        if self.faults.delivery.max_delay_ms:
            # One lock per event: a held-back frame holds back the rest of its own
            # event (order within an event is part of the protocol), never the frames
            # of other events, which overtake it.
            lock = self._delivery_locks.setdefault(event.event_id, asyncio.Lock())
            async with lock:
                await asyncio.sleep(self.faults.delay_s())
                await self._send_to_app(event, frame)
            if kind in TERMINAL_TYPES:
                self._delivery_locks.pop(event.event_id, None)
        else:
            await self._send_to_app(event, frame)
        for _ in range(self.faults.extra_copies(kind)):
            log.info("sent %s for %s twice (injected)", kind, event.event_id)
            await self._send_to_app(event, frame)
        if kind == "reply" and self.faults.wants_second_reply():
            self.spawn(self._second_reply(event, frame))

    async def _send_to_app(self, event: OpenEvent, frame: frames.JsonObject) -> None:
        if not await self.apps.send(event.app_id, frame, prefer=event.origin):
            self.stats.frames_undeliverable += 1
            log.debug("no open connection of app %s for %s", event.app_id, event.event_id)

    async def _second_reply(self, event: OpenEvent, first: frames.JsonObject) -> None:
        """A different ``reply`` for an event that already ended (injected)."""
        await asyncio.sleep(self.faults.delay_s() or SECOND_REPLY_DELAY_S)
        log.info("sent a second reply for finished event %s (injected)", event.event_id)
        await self._send_to_app(event, {**first, "reply": SECOND_REPLY_TEXT})

    def _finish(self, event: OpenEvent) -> None:
        self.events.pop(event.event_id, None)
        event.done.set()
        self.limiter(event.app_id).finish()
        if event.timer is not None:
            event.timer.cancel()
        # A script that ends its own event must not cancel itself mid-delivery.
        if event.task is not None and event.task is not asyncio.current_task():
            event.task.cancel()

    def _on_timeout(self, event: OpenEvent) -> None:
        self.spawn(self.fail_event(event, "AGENT_TIMEOUT", "Agent did not respond in time"))

    def _start_script(self, agent: ScriptedAgent, event: OpenEvent) -> None:
        event.task = self.spawn(run_script(self, agent, event))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def forget_open_events(self) -> int:
        """Drop every open and queued event, as a Relay that stopped has (how many).

        Their scripts were cancelled: kept, they would hold the plan's in-flight cap
        after a restart (refusing new events with RATE_LIMITED) and their timeout would
        still fail them, on the next connection, for events a killed Relay forgot.
        """
        forgotten = list(self.events.values())
        for event in forgotten:
            self._finish(event)
        self._queued.clear()
        self._delivery_locks.clear()
        return len(forgotten)
