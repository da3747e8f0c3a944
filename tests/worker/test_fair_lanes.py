"""The intake submits each run in its asker's lane of the session's fair queue.

A real session, connection, run streams and intake around the test database; the
connection is never opened, so what the intake submits stays queued to be looked at.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer

from project.tasks.models import Comment, Task
from relaybridge import services
from relaybridge.buffers import MemoryStreamBuffer
from relaybridge.models import AgentRun
from relaybridge.protocol import RelaySession
from relaybridge.worker.connection import RelayConnection
from relaybridge.worker.intake import RunIntake
from relaybridge.worker.options import WorkerOptions
from relaybridge.worker.run_streams import RunStreams
from relaybridge.worker.status import WorkerStatus

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]

URL = "ws://127.0.0.1:9/v1/ws/app"


def idle_intake(session: RelaySession) -> RunIntake:
    streams = RunStreams(
        get_channel_layer(), MemoryStreamBuffer(), flush_interval=0.02, stall_timeout=60.0
    )

    async def on_agents(agents: Any) -> None:
        return None

    connection = RelayConnection(
        url=URL,
        token="rlk_test_fairlanes",
        auth_style="header",
        session=session,
        streams=streams,
        status=WorkerStatus(state="connecting", identity="test", pid=0, relay_url=URL),
        on_agents=on_agents,
        heartbeat_interval=30.0,
        heartbeat_timeout=5.0,
    )
    options = WorkerOptions(url=URL, token="rlk_test_fairlanes")
    return RunIntake(options, get_channel_layer(), connection, streams)


def runs_of_a_chain(user: Any) -> tuple[str, str, str]:
    """A person's run, the hop its reply started, and a run no person asked for."""
    task = Task.objects.create(title="Lanes")
    asked = AgentRun.objects.get(
        comment=Comment.objects.create(task=task, author=user, body="@athena start")
    )
    assert services.mark_accepted(asked.run_id, "evt_lanes_1")
    reply = services.record_reply(asked.run_id, "over to @klyve")
    hop = AgentRun.objects.get(comment=reply)
    assert (hop.requested_by, hop.hop_depth, hop.status) == (None, 1, AgentRun.Status.SENDING)
    imported = Comment.objects.create(task=task, body="@klyve have a look", agent_id="athena")
    orphan = AgentRun.objects.get(comment=imported)
    assert (orphan.requested_by, orphan.status) == (None, AgentRun.Status.SENDING)
    asked.refresh_from_db()
    return str(asked.run_id), str(hop.run_id), str(orphan.run_id)


async def test_a_hop_is_queued_in_the_lane_of_the_person_who_started_the_chain(
    settings: Any, user: Any
) -> None:
    settings.RELAYBRIDGE_AGENT_HOPS = True
    session = RelaySession()
    intake = idle_intake(session)
    asked, hop, orphan = await sync_to_async(runs_of_a_chain)(user)
    # The person's own run has been answered; ask it again as if it were retried.
    await sync_to_async(
        lambda: AgentRun.objects.filter(run_id=asked).update(status=AgentRun.Status.SENDING)
    )()

    assert await intake.submit(hop)
    assert session.queued_askers() == [str(user.pk)]
    assert await intake.submit(orphan)
    assert await intake.submit(asked)
    assert session.queued_askers() == [str(user.pk), None]
    assert session.queued_refs() == [hop, orphan, asked]
