"""Stream plumbing shared by the relay worker and the browser consumer.

* Channel-layer names: the intake channel (``RELAYBRIDGE_OUTBOUND_CHANNEL``) and
  one group per thread, ``relaybridge.thread.<key>``.
* The browser messages (DESIGN §3) and their channel-layer envelopes: a group
  message is ``{"type": "relaybridge.<browser type>", "event": <browser message>}``,
  so the consumer's handler (e.g. ``relaybridge_run_delta``) forwards ``event``.
* The text-so-far buffer (:mod:`relaybridge.buffers`), re-exported here.

The browser messages are typed once, below (:class:`RunState` and one
``TypedDict`` per message); the worker, the consumer and the views build them only
through the functions here. Every text a person reads in them is worked out on
the server (:mod:`relaybridge.fragments`): ``status_text`` (the status line),
``writing_text`` (the line once text arrives), ``status_template`` (a retrying
run's line with ``{countdown}`` for the script's live countdown), ``html`` (the
run rendered with ``relaybridge/run.html``) and ``run.reply``'s ``fragment``
(the reply comment rendered with ``relaybridge/reply.html``). Streamed ``text`` is
plain text for the page to insert as text; ``run.reply``'s ``html`` is the reply's
sanitized body (:func:`relaybridge.rendered.reply_html`, rendered once when saved).

No message to a page is larger than a safe fraction of Daphne's 1 MiB websocket
frame: a text longer than :data:`PAGE_TEXT_CHARS` never travels in one message.
The relay worker splits a long delta into several (:func:`split_text`, each with
its own ``seq``); a run state whose text does not fit (:func:`page_messages`)
carries ``text: ""`` and ``parts: n`` and is followed by ``n`` ``run.text``
messages with the text in order. A run's ``html`` never carries its text (the
script puts the text in), so the text travels once.

Stop and Retry belong to those the adapter's ``can_control`` allows, and a push
reaches every page of the thread. So a pushed run carries two renderings: ``html``
without the buttons, for anyone, and ``control_html`` with them (only when its
status has a button). The consumer decides per socket, since it knows the viewer:
it sends ``control_html`` as ``html`` to a viewer who may use the buttons, and
drops it for everyone else (:func:`for_viewer`). A page never sees
``control_html``; a message built for one viewer (a snapshot, a view's answer)
has no ``control_html`` and its ``html`` is already theirs.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from typing import Any, Final, Literal, NotRequired, TypedDict

from channels.layers import BaseChannelLayer, get_channel_layer

from .adapters import get_adapter
from .buffers import MemoryStreamBuffer, RedisStreamBuffer, StreamBuffer, get_stream_buffer
from .conf import redact, relay_settings
from .fragments import (
    has_controls,
    render_reply,
    render_run,
    replied_text,
    retry_in,
    run_status_text,
    status_template,
)
from .fragments import writing_text as writing_line
from .models import AgentRun
from .rendered import StoredReplies, reply_html

logger = logging.getLogger("relaybridge")

__all__ = [
    "DISPATCH",
    "GROUP_PREFIX",
    "LAYER_TYPES",
    "RUN_DELTA",
    "RUN_ERROR",
    "RUN_REPLY",
    "RUN_STATUS",
    "RUN_TEXT",
    "SNAPSHOT",
    "BrowserMessage",
    "MemoryStreamBuffer",
    "RedisStreamBuffer",
    "RunDeltaMessage",
    "RunErrorMessage",
    "RunReplyMessage",
    "RunState",
    "RunStatusMessage",
    "RunTextMessage",
    "SnapshotMessage",
    "StreamBuffer",
    "delta_event",
    "dispatch_message",
    "error_event",
    "for_viewer",
    "get_stream_buffer",
    "group_message",
    "group_name_for_thread",
    "page_messages",
    "reply_event",
    "reply_event_for",
    "run_state",
    "snapshot_event",
    "split_text",
    "status_event",
]

#: Intake message type on ``relaybridge.outbound``: ``{"type": DISPATCH, "run_id": str}``.
DISPATCH: Final = "relaybridge.dispatch"

SNAPSHOT: Final = "snapshot"
RUN_STATUS: Final = "run.status"
RUN_DELTA: Final = "run.delta"
RUN_REPLY: Final = "run.reply"
RUN_ERROR: Final = "run.error"
#: A part of a run's text too long for its ``snapshot`` or ``run.status`` message
#: (made by the consumer as it sends to a page, never pushed to a group).
RUN_TEXT: Final = "run.text"
#: Channel-layer message type for each browser message type pushed to a group.
LAYER_TYPES: Final = {
    kind: f"relaybridge.{kind}" for kind in (SNAPSHOT, RUN_STATUS, RUN_DELTA, RUN_REPLY, RUN_ERROR)
}
#: The most characters of a run's text one page message carries. JSON escapes make
#: a character at most 12 bytes on the wire (an emoji: a surrogate pair of
#: ``\uXXXX``), so such a message stays under 400 KB: well within the 1 MiB
#: websocket frame Daphne accepts, with room for the message's other fields.
PAGE_TEXT_CHARS: Final = 32_768


class RunState(TypedDict):
    """A run as the page shows it (``snapshot``'s ``runs``, and ``run.status``)."""

    run: str
    agent_id: str
    agent_name: str
    comment_id: str
    status: str
    #: Seconds until a retrying run is sent again, else None.
    retry_in: float | None
    code: str
    message: str
    #: The text so far and the last delta's seq (0 before any).
    text: str
    seq: int
    #: Which attempt the text belongs to (1, 2, ...): a run whose answer was lost and
    #: asked again streams a new answer, which replaces the old one on the page.
    attempt: int
    #: How many ``run.text`` messages follow with the text (then ``text`` is "").
    parts: int
    status_text: str
    writing_text: str
    #: A retrying run's status line with ``{countdown}``; "" for other runs.
    status_template: str
    #: The run rendered with ``relaybridge/run.html`` (for the page's viewer, or,
    #: pushed to every page, without Stop/Retry).
    html: str
    #: Pushed only: the rendering with Stop/Retry, for viewers who may use them.
    #: The consumer removes it before a page sees the message (:func:`for_viewer`).
    control_html: NotRequired[str]


class SnapshotMessage(TypedDict):
    type: Literal["snapshot"]
    runs: list[RunState]


class RunStatusMessage(RunState):
    type: Literal["run.status"]


class RunDeltaMessage(TypedDict):
    type: Literal["run.delta"]
    run: str
    seq: int
    text: str


class RunTextMessage(TypedDict):
    """Part ``part`` (from 1) of the text of the run state just sent with ``parts``."""

    type: Literal["run.text"]
    run: str
    #: The seq of that run state: a part of another state's text is ignored.
    seq: int
    part: int
    text: str


class RunReplyMessage(TypedDict):
    type: Literal["run.reply"]
    run: str
    comment_id: str
    #: The reply's body, sanitized HTML.
    html: str
    agent_id: str
    #: The reply comment rendered with ``relaybridge/reply.html`` ("" if unknown).
    fragment: str
    status_text: str


class RunErrorMessage(TypedDict):
    type: Literal["run.error"]
    run: str
    code: str
    message: str
    retry_in: float | None


BrowserMessage = (
    SnapshotMessage
    | RunStatusMessage
    | RunDeltaMessage
    | RunReplyMessage
    | RunErrorMessage
    | RunTextMessage
)


class GroupMessage(TypedDict):
    """A browser message wrapped for ``group_send``."""

    type: str
    event: BrowserMessage


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


def _rendered(render: Callable[..., str], *args: Any) -> str:
    """A fragment, or "" when the host's template fails (the page then reloads its list).

    The run's change is already saved; a broken override must not stop the push
    that tells the pages, nor the relay worker that makes it.
    """
    try:
        return render(*args)
    except Exception:
        logger.exception("could not render %s for the page", render.__name__)
        return ""


def dispatch_message(run_id: str) -> dict[str, Any]:
    return {"type": DISPATCH, "run_id": str(run_id)}


def group_message(event: BrowserMessage) -> GroupMessage:
    """Wrap a browser message for ``group_send``."""
    return {"type": LAYER_TYPES[event["type"]], "event": event}


def run_state(
    run: AgentRun,
    text: str = "",
    seq: int = 0,
    *,
    embed_text: bool = True,
    controls: bool | None = None,
) -> RunState:
    """A run as the page shows it; ``text``/``seq`` from the stream buffer.

    ``embed_text=False``: without its text (``""``), for a page that has the text in
    the run's markup already (``{% relaybridge_stream %}``).
    ``controls``: the viewer may (True) or may not (False) press Stop and Retry;
    None for a push to every viewer (``html`` without the buttons, and
    ``control_html`` with them when the run has any; see the module docstring).
    """
    if run.status in (AgentRun.Status.FAILED, AgentRun.Status.STOPPED) and not text:
        text = run.partial_text
    # Text from Relay is redacted where it is stored; once more on its way to a page,
    # for what a buffer or a row from before kept as it came.
    text = redact(text)
    if not embed_text:
        text = ""
    name = get_adapter().agent_display_name(run.agent_id)
    state: RunState = {
        "run": str(run.run_id),
        "agent_id": run.agent_id,
        "agent_name": name,
        "comment_id": str(run.comment_id),
        "status": run.status,
        "retry_in": retry_in(run),
        "code": redact(run.error_code),
        "message": redact(run.error_message),
        "text": text,
        "seq": seq,
        "attempt": run.attempts,
        "parts": 0,
        "status_text": run_status_text(run, name),
        "writing_text": writing_line(name),
        "status_template": status_template(run, name),
        # Without the text, which the message carries once, in ``text``.
        "html": _rendered(render_run, run, bool(controls)),
    }
    if controls is None and has_controls(run):
        state["control_html"] = _rendered(render_run, run, True)
    return state


def for_viewer(event: RunStatusMessage, may_control: bool) -> RunStatusMessage:
    """A pushed ``run.status`` as one viewer gets it: ``html`` with the buttons if
    ``may_control``, without them otherwise, and never ``control_html``."""
    shown = event.copy()  # one push, many sockets: each gets its own
    control_html = shown.pop("control_html", None)
    if may_control and control_html is not None:
        shown["html"] = control_html
    return shown


def snapshot_event(states: list[RunState]) -> SnapshotMessage:
    return {"type": SNAPSHOT, "runs": states}


def status_event(
    run: AgentRun, text: str = "", seq: int = 0, *, controls: bool | None = None
) -> RunStatusMessage:
    """``run.status``; ``controls`` as for :func:`run_state` (None: a push to every viewer)."""
    state = run_state(run, text, seq, controls=controls)
    return {"type": RUN_STATUS, **state}


def split_text(text: str, size: int = PAGE_TEXT_CHARS) -> list[str]:
    """``text`` in pieces of at most ``size`` characters (``[text]`` when it fits)."""
    if len(text) <= size:
        return [text]
    return [text[start : start + size] for start in range(0, len(text), size)]


def _bounded(state: RunState, room: int) -> tuple[list[RunTextMessage], int]:
    """Move ``state``'s text to ``run.text`` parts when it is longer than ``room``.

    Returns the parts and the room left for the texts of other runs in the message.
    """
    text = state["text"]
    if len(text) <= room:
        return [], room - len(text)
    pieces = split_text(text)
    state["text"], state["parts"] = "", len(pieces)
    run, seq = state["run"], state["seq"]
    parts: list[RunTextMessage] = [
        {"type": RUN_TEXT, "run": run, "seq": seq, "part": number, "text": piece}
        for number, piece in enumerate(pieces, start=1)
    ]
    return parts, room


def page_messages(event: BrowserMessage) -> list[BrowserMessage]:
    """``event`` as the messages sent to a page, none of them too large for a frame.

    A ``snapshot`` or ``run.status`` whose texts together pass :data:`PAGE_TEXT_CHARS`
    is sent with the runs that do not fit as ``text: ""``, ``parts: n``, followed by
    their ``run.text`` parts. ``event`` itself is left as it was.
    """
    messages: list[BrowserMessage] = []
    if event["type"] == SNAPSHOT:
        room, runs = PAGE_TEXT_CHARS, []
        for state in event["runs"]:
            state = state.copy()
            parts, room = _bounded(state, room)
            runs.append(state)
            messages.extend(parts)
        return [snapshot_event(runs), *messages]
    if event["type"] == RUN_STATUS:
        status = event.copy()
        parts, _room = _bounded(status, PAGE_TEXT_CHARS)
        return [status, *parts]
    return [event]


def delta_event(run_id: str, seq: int, text: str) -> RunDeltaMessage:
    return {"type": RUN_DELTA, "run": str(run_id), "seq": seq, "text": text}


def reply_event(
    run_id: str,
    comment_id: Any,
    html: str,
    agent_id: str = "",
    *,
    fragment: str = "",
    status_text: str = "",
) -> RunReplyMessage:
    return {
        "type": RUN_REPLY,
        "run": str(run_id),
        "comment_id": str(comment_id),
        "html": html,
        "agent_id": agent_id,
        "fragment": fragment,
        "status_text": status_text,
    }


def reply_event_for(run: AgentRun, comment: Any) -> RunReplyMessage:
    """``run.reply`` for the reply ``comment`` that ``run`` has just saved: its body and
    its ``reply.html``. ``run`` is as saved (:func:`~relaybridge.services.record_reply_and_run`):
    it has the reply's stored HTML, and the fragment's buttons come from it alone."""
    name = get_adapter().agent_display_name(run.agent_id)
    html = reply_html(comment, StoredReplies([run]))
    return reply_event(
        str(run.run_id),
        comment.pk,
        html,
        run.agent_id,
        fragment=_rendered(render_reply, comment, html, run),
        status_text=replied_text(name),
    )


def error_event(run_id: str, code: str, message: str, retry_in: float | None) -> RunErrorMessage:
    return {
        "type": RUN_ERROR,
        "run": str(run_id),
        "code": redact(code),
        "message": redact(message),
        "retry_in": retry_in,
    }
