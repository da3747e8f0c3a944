"""Stream plumbing shared by the relay worker and the browser consumer.

* Channel-layer names: the intake channel (``RELAYBRIDGE_OUTBOUND_CHANNEL``) and
  one group per thread, ``relaybridge.thread.<key>``.
* The browser messages (DESIGN §3) and their channel-layer envelopes: a group
  message is ``{"type": "relaybridge.<browser type>", "event": <browser message>}``,
  so the consumer's handler (e.g. ``relaybridge_run_delta``) forwards ``event``.
* The text-so-far buffer (:mod:`relaybridge.buffers`), re-exported here.

Browser messages::

    {"type": "snapshot", "runs": [<run state>, ...]}
    {"type": "run.status", <run state>}
    {"type": "run.delta", "run": <uuid>, "seq": n, "text": "..."}
    {"type": "run.reply", "run": <uuid>, "comment_id": "...", "html": "...", "agent_id": ...}
    {"type": "run.error", "run": <uuid>, "code": "...", "message": "...", "retry_in": s|null}

A run state is ``{"run", "agent_id", "agent_name", "comment_id", "status",
"retry_in", "code", "message", "text", "seq"}``; ``text``/``seq`` are the text so
far and the last delta's sequence number (0 before any). Streamed ``text`` is plain
text for the page to insert as text; only ``run.reply``'s ``html`` is markup, and
it is sanitized (:func:`relaybridge.rendering.render_agent_markdown`).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Final

from channels.layers import BaseChannelLayer, get_channel_layer
from django.utils import timezone

from .adapters import get_adapter
from .buffers import MemoryStreamBuffer, RedisStreamBuffer, StreamBuffer, get_stream_buffer
from .conf import relay_settings
from .models import AgentRun

__all__ = [
    "DISPATCH",
    "GROUP_PREFIX",
    "LAYER_TYPES",
    "RUN_DELTA",
    "RUN_ERROR",
    "RUN_REPLY",
    "RUN_STATUS",
    "SNAPSHOT",
    "MemoryStreamBuffer",
    "RedisStreamBuffer",
    "StreamBuffer",
    "delta_event",
    "dispatch_message",
    "error_event",
    "get_stream_buffer",
    "group_message",
    "group_name_for_thread",
    "reply_event",
    "run_state",
    "snapshot_event",
    "status_event",
]

#: Intake message type on ``relaybridge.outbound``: ``{"type": DISPATCH, "run_id": str}``.
DISPATCH: Final = "relaybridge.dispatch"

SNAPSHOT: Final = "snapshot"
RUN_STATUS: Final = "run.status"
RUN_DELTA: Final = "run.delta"
RUN_REPLY: Final = "run.reply"
RUN_ERROR: Final = "run.error"
#: Channel-layer message type for each browser message type.
LAYER_TYPES: Final = {
    kind: f"relaybridge.{kind}" for kind in (SNAPSHOT, RUN_STATUS, RUN_DELTA, RUN_REPLY, RUN_ERROR)
}

GROUP_PREFIX: Final = "relaybridge.thread."
# Channels allows ASCII letters, digits, "-", "_" and "." in names shorter than 100.
_UNSAFE: Final = re.compile(r"[^A-Za-z0-9_.\-]")
_MAX_GROUP_LEN: Final = 99


def group_name_for_thread(thread_key: str) -> str:
    """The channel-layer group of a thread: ``relaybridge.thread.<key>``.

    A key that is not already safe and short is cleaned and suffixed with a hash of
    the original, so two different keys never share a group.
    """
    name = GROUP_PREFIX + thread_key
    if thread_key and not _UNSAFE.search(thread_key) and len(name) <= _MAX_GROUP_LEN:
        return name
    digest = hashlib.sha256(thread_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    cleaned = _UNSAFE.sub("_", thread_key)[:40]
    return f"{GROUP_PREFIX}{cleaned}.{digest}"


def stream_layer() -> BaseChannelLayer | None:
    """The channel layer of pages' streams (``RELAYBRIDGE_STREAM_LAYER``)."""
    return get_channel_layer(relay_settings.STREAM_LAYER)


def dispatch_message(run_id: str) -> dict[str, Any]:
    return {"type": DISPATCH, "run_id": str(run_id)}


def group_message(event: dict[str, Any]) -> dict[str, Any]:
    """Wrap a browser message for ``group_send``."""
    return {"type": LAYER_TYPES[event["type"]], "event": event}


def _retry_in(run: AgentRun) -> float | None:
    if run.status != AgentRun.Status.RETRYING or run.next_attempt_at is None:
        return None
    return max(0.0, round((run.next_attempt_at - timezone.now()).total_seconds(), 1))


def run_state(run: AgentRun, text: str = "", seq: int = 0) -> dict[str, Any]:
    """A run as the page shows it; ``text``/``seq`` from the stream buffer."""
    if run.status in (AgentRun.Status.FAILED, AgentRun.Status.STOPPED) and not text:
        text = run.partial_text
    return {
        "run": str(run.run_id),
        "agent_id": run.agent_id,
        "agent_name": get_adapter().agent_display_name(run.agent_id),
        "comment_id": str(run.comment_id),
        "status": run.status,
        "retry_in": _retry_in(run),
        "code": run.error_code,
        "message": run.error_message,
        "text": text,
        "seq": seq,
    }


def snapshot_event(states: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": SNAPSHOT, "runs": states}


def status_event(run: AgentRun, text: str = "", seq: int = 0) -> dict[str, Any]:
    return {"type": RUN_STATUS, **run_state(run, text, seq)}


def delta_event(run_id: str, seq: int, text: str) -> dict[str, Any]:
    return {"type": RUN_DELTA, "run": str(run_id), "seq": seq, "text": text}


def reply_event(run_id: str, comment_id: Any, html: str, agent_id: str = "") -> dict[str, Any]:
    return {
        "type": RUN_REPLY,
        "run": str(run_id),
        "comment_id": str(comment_id),
        "html": html,
        "agent_id": agent_id,
    }


def error_event(run_id: str, code: str, message: str, retry_in: float | None) -> dict[str, Any]:
    return {
        "type": RUN_ERROR,
        "run": str(run_id),
        "code": code,
        "message": message,
        "retry_in": retry_in,
    }
