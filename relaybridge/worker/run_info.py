"""What the relay worker remembers about a run it carries, and how it reads it.

Plain functions over the ORM: :class:`~relaybridge.worker.runs.RunUpdates` calls
them in a database thread, never on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import services, streams
from ..models import AgentRun


@dataclass(slots=True)
class RunInfo:
    """What the worker remembers about a run it carries."""

    run_id: str
    agent_id: str
    thread_id: str
    group: str
    agent_name: str
    attempts: int
    last_error_code: str
    streaming: bool = False
    last_touch: float = 0.0
    #: Stopped from a page (Relay has no cancel): the agent may go on; we drop its tokens.
    ended: bool = False


def accepted_status(run_id: str, event_id: str, seq: int) -> streams.RunStatusMessage | None:
    """Record ``accepted`` and build the page's status event, in one trip to a thread.

    ``None``: the run had moved on. The text so far is empty: no token has come yet.
    """
    return fresh_status(run_id, seq) if services.mark_accepted(run_id, event_id) else None


def saved_reply(
    run_id: str, text: str, metadata: dict[str, Any], agent_id: str
) -> streams.RunReplyMessage | None:
    """Save the reply and render it for the page, in one trip to a thread.

    The ``run.reply`` message, or ``None`` when the run's reply was saved before.
    It is made from the comment as saved (tokens blanked, see record_reply).
    """
    comment = services.record_reply(run_id, text, metadata)
    if comment is None:
        return None
    return streams.reply_event_for(run_id, comment, agent_id)


def fresh_status(run_id: str, seq: int) -> streams.RunStatusMessage | None:
    run = services.get_run(run_id)
    return None if run is None else streams.status_event(run, "", seq)


def run_info(run: AgentRun) -> RunInfo:
    from ..adapters import get_adapter

    return RunInfo(
        run_id=str(run.run_id),
        agent_id=run.agent_id,
        thread_id=run.thread_id,
        group=streams.group_name_for_thread(run.thread_key),
        agent_name=get_adapter().agent_display_name(run.agent_id),
        attempts=run.attempts,
        last_error_code=run.error_code,
        streaming=run.status == AgentRun.Status.STREAMING,
        # Its tokens are no longer shown: a first token would otherwise go out
        # before the write that finds the run stopped (see starts.py).
        ended=run.status == AgentRun.Status.STOPPED,
    )
