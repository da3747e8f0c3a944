"""The in-process control API of the emulator: fault injection and introspection.

Tests drive Relay's misbehaviour through these methods instead of timing tricks:
take an agent offline, drop every app connection as a network failure would,
make the next events fail with a chosen code, restrict which agents an app may
reach, and wait for an agent to connect.
"""

from __future__ import annotations

from collections.abc import Iterable

from .agents import ScriptedAgent
from .events import Stats
from .faults import DeliveryCounts, DeliveryFaults
from .raw import RawFrames
from .router import Router


class EmulatorControl:
    def __init__(self, router: Router) -> None:
        self.router = router
        #: Raw mode: arbitrary bytes on the app connections (see :mod:`.raw`).
        self.raw = RawFrames(router)

    # -- presence -----------------------------------------------------------------

    def set_agent_offline(self, agent_id: str) -> None:
        """Treat ``agent_id`` as offline (new events get AGENT_OFFLINE, or are queued)."""
        self.router.faults.forced_offline.add(agent_id)

    def set_agent_online(self, agent_id: str) -> None:
        """Undo :meth:`set_agent_offline`; events queued for the agent are dispatched."""
        self.router.faults.forced_offline.discard(agent_id)
        self.router.wake(agent_id)

    def is_agent_online(self, agent_id: str) -> bool:
        return self.router.is_online(agent_id)

    def agent_connected(self, agent_id: str) -> bool:
        """Whether an external agent holds at least one open connection."""
        return self.router.agents.connected(agent_id)

    async def wait_for_agent(self, agent_id: str, *, connected: bool = True) -> None:
        """Wait until an external agent ``agent_id`` is connected (or, with
        ``connected=False``, until it has no connection left). Wrap in ``asyncio.timeout``."""
        agents = self.router.agents
        await agents.wait_until(lambda: agents.connected(agent_id) is connected)

    async def wait_for_app(self, app_id: str, count: int = 1) -> None:
        """Wait until ``app_id`` holds at least ``count`` open connections."""
        apps = self.router.apps
        await apps.wait_until(lambda: len(apps.of(app_id)) >= count)

    async def wait_for_event(self, event_id: str) -> None:
        """Wait until ``event_id`` reached its terminal frame (returns at once if not open)."""
        event = self.router.events.get(event_id)
        if event is not None:
            await event.done.wait()

    # -- faults -------------------------------------------------------------------

    def drop_app_connections(self, app_id: str | None = None) -> int:
        """Abort app connections (all apps by default) without a close frame."""
        return self.router.apps.abort(app_id)

    def drop_agent_connections(self, agent_id: str | None = None) -> int:
        """Abort external agent connections without a close frame."""
        return self.router.agents.abort(agent_id)

    def fail_next_events(
        self, count: int, code: str, message: str | None = None, *, agent_id: str | None = None
    ) -> None:
        """The next ``count`` valid events fail with ``code``.

        AGENT_ERROR and AGENT_TIMEOUT are reported after ``accepted`` with the
        event id, as an agent failure would be; any other code refuses the event
        with a null-event error.
        """
        self.router.faults.fail_next_events(count, code, message, agent_id)

    def set_delivery_faults(self, delivery: DeliveryFaults) -> None:
        """Duplicate, delay (and so reorder across events) frames, send second replies;
        ``DeliveryFaults()`` switches them off. What they did: ``delivery_counts``."""
        self.router.faults.set_delivery(delivery)

    @property
    def delivery_counts(self) -> DeliveryCounts:
        return self.router.faults.delivered

    def reset_faults(self) -> None:
        """Clear forced-offline agents, pending injected failures and delivery faults."""
        forced = list(self.router.faults.forced_offline)
        self.router.faults.clear()
        for agent_id in forced:
            self.router.wake(agent_id)

    # -- configuration at run time ----------------------------------------------

    def set_allowed_agents(self, app_id: str, agent_ids: Iterable[str] | None) -> None:
        """Restrict ``app_id`` to ``agent_ids`` (``None`` lifts the restriction)."""
        if agent_ids is None:
            self.router.allowed.pop(app_id, None)
        else:
            self.router.allowed[app_id] = frozenset(agent_ids)

    def add_agent(self, agent: ScriptedAgent) -> None:
        """Add (or replace) a built-in scripted agent."""
        self.router.builtins[agent.agent_id] = agent

    # -- introspection ------------------------------------------------------------

    @property
    def stats(self) -> Stats:
        return self.router.stats

    @property
    def open_event_ids(self) -> list[str]:
        """Accepted events that have not reached their terminal frame, oldest first."""
        return list(self.router.events)

    def in_flight(self, app_id: str) -> int:
        return self.router.limiter(app_id).in_flight
