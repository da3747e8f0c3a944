"""The event payload sent to Relay for a run, always within Relay's size limit.

Shape (relay-protocol.md §2)::

    {"event": "comment.mention", "message": <the comment's text>,
     "task_id": <Relay thread id>, "task_title": ..., "comment_id": "<pk>",
     "sender": {"id": ..., "name": ...}, "comments": [{"author", "text"}, ...],
     "relaybridge_run": "<run uuid>", "relaybridge_attempt": <1, 2, ...>}

``comments`` is the recent thread history, oldest first. When the payload is over
65,536 bytes the oldest history goes first; if the comment itself is too large on
its own, its text is cut at the end and marked as shortened.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ..adapters import get_adapter
from ..conf import redact
from ..models import AgentRun
from ..protocol.payload import MAX_PAYLOAD_BYTES, check_payload_size, payload_size

EVENT_NAME: Final = "comment.mention"
TRUNCATION_MARK: Final = "\n\n[message shortened to fit Relay's size limit]"
_MAX_TITLE_CHARS: Final = 500
_MAX_NAME_CHARS: Final = 200


def build_payload(run: AgentRun) -> dict[str, Any]:
    """The payload for ``run``, built through the host adapter and trimmed to fit."""
    adapter = get_adapter()
    comment = run.comment
    context = adapter.payload_context(comment)
    sender = context["sender"]
    # Tokens people paste into a thread never travel to Relay (where an agent could
    # repeat them back) and are never stored with the run.
    payload: dict[str, Any] = {
        "event": EVENT_NAME,
        "message": redact(adapter.text(comment)),
        "task_id": run.thread_id,
        "task_title": redact(context["task_title"][:_MAX_TITLE_CHARS]),
        "comment_id": str(comment.pk),
        "sender": {
            "id": str(sender["id"])[:_MAX_NAME_CHARS],
            "name": str(sender["name"])[:_MAX_NAME_CHARS],
        },
        "comments": [
            {"author": str(entry["author"])[:_MAX_NAME_CHARS], "text": redact(str(entry["text"]))}
            for entry in context["comments"]
        ],
        "relaybridge_run": str(run.run_id),
        # 1, 2, ...: every send of the run, a person's Retry included, counts (the
        # ledger's attempts); a run asked again keeps its relaybridge_run.
        "relaybridge_attempt": len(run.attempt_log or []) or max(1, run.attempts),
    }
    return fit_payload(payload)


def _encoded_len(value: Any) -> int:
    return len(json.dumps(value).encode("utf-8"))


def fit_payload(payload: Mapping[str, Any], limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """``payload`` trimmed to at most ``limit`` bytes: oldest history first, then the message."""
    fitted = dict(payload)
    comments = list(fitted.get("comments") or [])
    fitted["comments"] = comments
    excess = payload_size(fitted) - limit
    if excess <= 0:
        return fitted

    # Each dropped entry saves its own bytes plus the ", " separating it from the next.
    drop = 0
    while excess > 0 and drop < len(comments):
        remaining = len(comments) - drop
        excess -= _encoded_len(comments[drop]) + (2 if remaining > 1 else 0)
        drop += 1
    fitted["comments"] = comments[drop:]

    if payload_size(fitted) > limit:
        fitted["message"] = _shortened_message(fitted, limit)
    check_payload_size(fitted)
    return fitted


def _shortened_message(payload: dict[str, Any], limit: int) -> str:
    message = str(payload.get("message", ""))
    overhead = payload_size({**payload, "message": ""})
    # Bytes the message's escaped text may take, after the mark.
    budget = limit - overhead - (_encoded_len(TRUNCATION_MARK) - 2)
    if budget <= 0:
        return ""
    # Every character costs at least one byte, so no prefix longer than the budget fits.
    low, high = 0, min(len(message), budget)
    while low < high:
        middle = (low + high + 1) // 2
        if _encoded_len(message[:middle]) - 2 <= budget:
            low = middle
        else:
            high = middle - 1
    return message[:low] + TRUNCATION_MARK
