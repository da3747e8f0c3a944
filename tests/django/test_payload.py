"""The payload sent to Relay: its fields, and trimming to 65,536 bytes."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from project.tasks.models import Comment
from relaybridge import services
from relaybridge.models import AgentRun
from relaybridge.protocol.payload import MAX_PAYLOAD_BYTES, payload_size
from relaybridge.services.dispatch import prepare_dispatch
from relaybridge.services.payload import TRUNCATION_MARK, fit_payload

pytestmark = pytest.mark.django_db


def run_for(comment: Comment, agent_id: str = "athena") -> AgentRun:
    services.create_runs(comment, [agent_id])  # a no-op when the mention made it already
    return AgentRun.objects.select_related("comment").get(comment=comment, agent_id=agent_id)


def test_payload_fields(make_comment: Callable[..., Comment], settings: Any) -> None:
    settings.RELAYBRIDGE_HISTORY_COMMENTS = 2
    make_comment("first, soon out of the window")
    make_comment("I moved billing to Q3.")
    make_comment("Summary attached.", agent_id="klyve")
    mention = make_comment("no mention: the run is created directly")
    make_comment("written after the mention")
    run = run_for(mention)

    payload = services.build_payload(run)
    assert payload == {
        "event": "comment.mention",
        "message": "no mention: the run is created directly",
        "task_id": f"task-{mention.task_id}",
        "task_title": "Q2 Roadmap Review",
        "comment_id": str(mention.pk),
        "sender": {"id": str(mention.author_id), "name": "Alice Ng"},
        "comments": [
            {"author": "Alice Ng", "text": "I moved billing to Q3."},
            {"author": "Klyve", "text": "Summary attached."},
        ],
        "relaybridge_run": str(run.run_id),
        "relaybridge_attempt": 1,
    }


def test_oversized_history_is_trimmed_oldest_first(make_comment: Callable[..., Comment]) -> None:
    for index in range(12):
        make_comment(f"old-{index:02d} " + "x" * 8_000)
    mention = make_comment("@athena summarize")
    payload = services.build_payload(run_for(mention))
    size = payload_size(payload)
    assert size <= MAX_PAYLOAD_BYTES
    texts = [entry["text"][:6] for entry in payload["comments"]]
    # The newest comments survive, in order, and nothing more could have fit.
    assert texts == [f"old-{i:02d}" for i in range(12 - len(texts), 12)]
    assert 0 < len(texts) < 12
    assert size + 8_020 > MAX_PAYLOAD_BYTES
    assert payload["message"] == "@athena summarize"


def test_a_single_giant_comment_is_shortened(make_comment: Callable[..., Comment]) -> None:
    make_comment("history " * 100)
    mention = make_comment("@athena " + "é" * 200_000)
    payload = services.build_payload(run_for(mention))
    assert payload_size(payload) <= MAX_PAYLOAD_BYTES
    assert payload["comments"] == []
    assert payload["message"].startswith("@athena éé")
    assert payload["message"].endswith(TRUNCATION_MARK)
    # As long as possible: one more character would not have fitted.
    assert payload_size(payload) > MAX_PAYLOAD_BYTES - 6 - 1


@pytest.mark.parametrize("limit", [300, 1_000, 5_000])
def test_fit_payload_at_any_limit(limit: int) -> None:
    payload = {
        "event": "comment.mention",
        "message": "\U0001f600 hi " * 200,
        "comments": [{"author": "A", "text": f"c{i} " * 30} for i in range(20)],
    }
    fitted = fit_payload(payload, limit)
    assert len(json.dumps(fitted).encode()) <= limit
    if fitted["comments"]:
        assert fitted["comments"][-1] == payload["comments"][-1]


def test_fit_payload_leaves_small_payloads_alone() -> None:
    payload = {"event": "comment.mention", "message": "hi", "comments": [{"a": 1}]}
    assert fit_payload(payload) == payload


def test_payload_stored_on_dispatch(make_comment: Callable[..., Comment]) -> None:
    comment = make_comment("@athena hello")
    run = AgentRun.objects.get(comment=comment)
    assert run.status == AgentRun.Status.QUEUED  # dispatch waits for commit
    from relaybridge.tasks import dispatch_run

    assert dispatch_run(str(run.run_id)) == "sent"
    run.refresh_from_db()
    assert run.payload is not None and run.payload["message"] == "@athena hello"


def test_every_send_of_a_run_has_its_own_attempt_number(
    make_comment: Callable[..., Comment],
) -> None:
    run = run_for(make_comment("@athena hi"))

    def attempt() -> object:
        assert prepare_dispatch(run.run_id) == "ready"
        fresh = AgentRun.objects.get(pk=run.pk)
        assert fresh.payload is not None
        return fresh.payload["relaybridge_attempt"]

    assert attempt() == 1
    services.record_error(run.run_id, "RELAYBRIDGE_CONNECTION_LOST", "lost", 0, schedule=False)
    assert attempt() == 2
    services.record_error(run.run_id, "AGENT_ERROR", "boom", None)
    assert services.retry_run(run.run_id)
    assert attempt() == 3  # a person's Retry: a new number, never one seen before
    reasons = [e["reason"] for e in AgentRun.objects.get(pk=run.pk).attempt_log]
    assert reasons == ["mention", "RELAYBRIDGE_CONNECTION_LOST", "retry_button"]
