"""One trip to the relay worker's database thread reads what it needs once: the
agent directory, and the run whose reply it saves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from relaybridge import agents
from relaybridge.models import AgentRun
from relaybridge.worker.database import in_thread, saved_reply

from .stack import accepted_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_stack")]


@pytest.fixture
def directory_reads(monkeypatch: Any) -> Iterator[list[str]]:
    """Every read of the agent directory from the cache, as it happens."""
    agents.store_directory([{"agent_id": "athena", "name": "Athena"}])
    reads: list[str] = []
    read = agents._read_directory

    def counted() -> Any:
        reads.append("read")
        return read()

    monkeypatch.setattr(agents, "_read_directory", counted)
    yield reads


async def test_saving_a_reply_reads_the_agent_directory_once(directory_reads: list[str]) -> None:
    run = await sync_to_async(accepted_run)("Directory reads")
    directory_reads.clear()
    message = await in_thread(saved_reply)(str(run.run_id), "Done.", {})
    assert message is not None and "Athena" in message["status_text"]
    # The reply names its agent in its status, its fragment, its actions and the
    # signal that looks for mentions in it: one read of the cache for all of them.
    assert directory_reads == ["read"]


async def test_saving_a_reply_reads_its_run_once() -> None:
    """The ``run.reply`` push is made from the run as the save left it (replied, with
    its reply comment and the reply's stored HTML), not from a second read of it."""
    run = await sync_to_async(accepted_run)("Run reads")

    def save() -> tuple[Any, list[str]]:
        with CaptureQueriesContext(connection) as captured:
            message = saved_reply(str(run.run_id), "All **done**.", {})
        return message, [query["sql"] for query in captured.captured_queries]

    message, queries = await in_thread(save)()
    runs_read = [sql for sql in queries if sql.startswith("SELECT") and "agentrun" in sql]
    assert len(runs_read) == 1, runs_read
    # Nobody can have voted on a reply no page has shown yet: no count of its votes.
    assert not [sql for sql in queries if "replyfeedback" in sql]
    saved = await sync_to_async(AgentRun.objects.get)(pk=run.pk)
    assert saved.status == AgentRun.Status.REPLIED and saved.reply_comment_id is not None
    assert message is not None and message["run"] == str(run.run_id)
    assert message["comment_id"] == str(saved.reply_comment_id)
    assert message["html"] == saved.reply_html and "<strong>done</strong>" in message["html"]
    assert saved.reply_html in message["fragment"]
    assert f'data-relaybridge-feedback="{run.run_id}"' in message["fragment"]
    # A second save of the same run saves nothing and pushes nothing.
    assert await in_thread(saved_reply)(str(run.run_id), "Again.", {}) is None


async def test_each_trip_reads_the_directory_afresh(directory_reads: list[str]) -> None:
    def name() -> str:
        return agents.agent_name("athena")

    assert await in_thread(name)() == "Athena"
    await sync_to_async(agents.store_directory)([{"agent_id": "athena", "name": "Athena II"}])
    assert await in_thread(name)() == "Athena II"
    assert directory_reads == ["read", "read"]


async def test_a_directory_stored_during_a_trip_is_read_again_in_it(
    directory_reads: list[str],
) -> None:
    def rename_between_reads() -> tuple[str, str, str]:
        before = agents.agent_name("athena")
        agents.store_directory([{"agent_id": "athena", "name": "Athena II"}])
        renamed = agents.agent_name("athena")
        agents.mark_unavailable("athena")
        return before, renamed, str(agents.get_directory())

    before, renamed, directory = await in_thread(rename_between_reads)()
    assert (before, renamed) == ("Athena", "Athena II")
    assert "'unavailable': True" in directory
