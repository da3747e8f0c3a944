"""The browser's live stream of a thread: ``/ws/tasks/<thread value>/``.

:class:`ThreadStreamConsumer` lets a page watch the agent runs of one thread (a
task). On connect it checks the thread value in the URL against a strict pattern
before any lookup (close code 4400 when it does not match, see
:mod:`relaybridge.stream_urls`), then the adapter's ``can_view`` (close code 4003
when refused, 4004 for a thread that does not exist), joins the thread's group, sends a
``snapshot`` of the active runs with their text so far, and then forwards the
``run.status`` / ``run.delta`` / ``run.reply`` / ``run.error`` messages the relay
worker and the Retry/Stop views push to the group (DESIGN §3). A server process is a
member of a thread's group once, however many of its pages watch the thread: it
receives each push once and hands it to each of them (:mod:`relaybridge.page_fanout`).

Stop and Retry are offered per socket: a pushed ``run.status`` carries the run's
markup without the buttons (``html``) and with them (``control_html``), and this
socket sends the latter only when the adapter's ``can_control`` allows its user
that run (asked once per run and socket, and the sockets of a process that ask at
the same moment are answered from one query; the snapshot asks for its runs). The
views check again; this decides only what the page shows.

Nothing is lost or doubled for a page that joins mid-stream: the worker appends a
delta to the text-so-far buffer *before* it pushes it, and the consumer joins the
group *before* it reads the buffer. Every delta is therefore in the snapshot, or
arrives on the socket afterwards, or both; "both" is dropped here by sequence
number, so each delta reaches the page exactly once. A delta that does not follow
the last one the socket sent (the buffer was being written back after Redis lost it
when the snapshot was read, or a push was lost) is not sent on its own, as if it
followed: the page gets the run's whole text so far from the buffer instead. The same
keeps a page stuck behind a slow query in bounds: past ``MAX_QUEUED_PUSHES`` waiting
pushes, only each run's last delta is kept.

No frame to the page is larger than a safe fraction of Daphne's 1 MiB limit: a
snapshot or status whose text is long is sent as the message and its ``run.text``
parts (:func:`relaybridge.streams.page_messages`), one after the other, before any
later message of the group.

What keeps the sockets in bounds (:mod:`relaybridge.socket_guard`): the ``Origin``
must be exactly the page's own or one in ``RELAYBRIDGE_ALLOWED_ORIGINS`` (else 4403);
one person holds at most ``RELAYBRIDGE_MAX_SOCKETS_PER_USER`` sockets (else 4429);
a socket is closed with 4401 when its session ends or its account is deactivated
(at once through the person's group, and at the latest at the next re-check every
``RELAYBRIDGE_SOCKET_RECHECK_INTERVAL`` seconds), and with 4003 when ``can_view``
stops letting the person watch the thread. What a page sends up is read only if it
is a short JSON text; anything else is ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
import weakref
from collections import deque
from typing import Any, Final

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from . import feedback, page_fanout, services, socket_guard, streams
from .adapters import get_adapter
from .batching import RoundTrips
from .conf import relay_settings
from .fragments import has_controls
from .models import ACTIVE_STATUSES, AgentRun
from .stream_urls import is_thread_value, thread_for_url

__all__ = ["RefusedPathConsumer", "ThreadStreamConsumer", "authorize", "thread_for_url"]

logger = logging.getLogger("relaybridge")

#: Close codes the page's script understands: do not reconnect after these.
CLOSE_FORBIDDEN: Final = 4003
CLOSE_NOT_FOUND: Final = 4004
#: The thread value in the URL, or the socket's path, is malformed: refused before any lookup.
CLOSE_BAD_THREAD: Final = 4400
#: The session ended (signed out, expired) or the account was deactivated or deleted.
CLOSE_SESSION_ENDED: Final = 4401
#: The ``Origin`` is not the page's own (scheme, host and port) nor an allowed one.
CLOSE_BAD_ORIGIN: Final = 4403
#: The person already holds ``RELAYBRIDGE_MAX_SOCKETS_PER_USER`` sockets.
CLOSE_TOO_MANY_SOCKETS: Final = 4429
#: Longer messages from a page are not even parsed: the page sends only pings.
MAX_CLIENT_MESSAGE_CHARS: Final = 4096
#: Pushes a page's queue holds before its deltas are thinned (see ``take``).
MAX_QUEUED_PUSHES: Final = 1000
#: The group messages this consumer forwards (``relaybridge.run.delta`` and the like).
GROUP_MESSAGE_PREFIX: Final = "relaybridge."

_ENDED: Final = frozenset(
    {AgentRun.Status.REPLIED, AgentRun.Status.FAILED, AgentRun.Status.STOPPED}
)


def authorize(user: Any, value: str) -> tuple[int, str]:
    """``(0, thread_key)`` when ``user`` may watch the thread, else ``(close code, "")``."""
    if not is_thread_value(value):
        return CLOSE_BAD_THREAD, ""
    if not getattr(user, "is_authenticated", False):
        return CLOSE_FORBIDDEN, ""
    adapter = get_adapter()
    thread = thread_for_url(adapter, value)
    if thread is None:
        return CLOSE_NOT_FOUND, ""
    if not adapter.can_view(user, thread):
        return CLOSE_FORBIDDEN, ""
    return 0, adapter.thread_key(thread)


def _active_runs(thread_key: str) -> list[AgentRun]:
    return list(services.active_runs(thread_key))


def _may_control(user: Any, run: AgentRun | None) -> bool:
    """The adapter's ``can_control``; False (no buttons) when it fails."""
    if run is None:
        return False
    try:
        return bool(get_adapter().can_control(user, run))
    except Exception:
        logger.exception("can_control failed for run %s", run.run_id)
        return False


#: One socket's question: may this user press Stop and Retry on (run id, thread key)?
ControlQuestion = tuple[Any, str, str]


def _controls(questions: list[ControlQuestion]) -> list[bool | Exception]:
    """``can_control`` for many sockets at once, their runs read in one query."""
    run_ids: set[uuid.UUID] = set()
    for _user, run_id, _thread_key in questions:
        with contextlib.suppress(ValueError):
            run_ids.add(uuid.UUID(run_id))
    runs = {
        (str(run.run_id), run.thread_key): run
        for run in AgentRun.objects.filter(run_id__in=run_ids)
    }
    return [
        _may_control(user, runs.get((run_id, thread_key))) for user, run_id, thread_key in questions
    ]


async def _send_control_questions(questions: list[ControlQuestion]) -> list[bool | Exception]:
    answers: list[bool | Exception] = await database_sync_to_async(_controls)(questions)
    return answers


#: Per event loop (one per server process). A new run's first status reaches every
#: page of its thread at once: five hundred pages asking one by one were five
#: hundred queries in a row on Channels' one database thread, ahead of the answer's
#: first tokens; asked together, those that wait go in one query.
_control_trips: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, RoundTrips[ControlQuestion, bool]
] = weakref.WeakKeyDictionary()


def _control_questions() -> RoundTrips[ControlQuestion, bool]:
    loop = asyncio.get_running_loop()
    trips = _control_trips.get(loop)
    if trips is None:
        trips = _control_trips[loop] = RoundTrips(_send_control_questions)
    return trips


def _states(
    user: Any,
    runs: list[AgentRun],
    texts: dict[str, tuple[str, int]],
    control: dict[str, bool],
) -> list[streams.RunState]:
    states = []
    for run in runs:
        run_id = str(run.run_id)
        # A run without buttons now may get them later (a Stop, a failure): asked then.
        if has_controls(run):
            control[run_id] = _may_control(user, run)
        states.append(streams.run_state(run, *texts[run_id], controls=control.get(run_id, False)))
    return states


def _is_active(run_id: str, thread_key: str) -> bool:
    return AgentRun.objects.filter(
        run_id=run_id, thread_key=thread_key, status__in=ACTIVE_STATUSES
    ).exists()


def _active_status(
    run_id: str, thread_key: str, text: str, seq: int
) -> streams.RunStatusMessage | None:
    """The run's ``run.status`` with ``text``/``seq``; None if it is not active here."""
    run = AgentRun.objects.filter(
        run_id=run_id, thread_key=thread_key, status__in=ACTIVE_STATUSES
    ).first()
    return None if run is None else streams.status_event(run, text, seq)


def _thinned(queued: deque[page_fanout.Push]) -> deque[page_fanout.Push]:
    """``queued`` with only the last delta of each run. A page stuck behind a slow
    query must not hold a fast answer's every token: the delta kept does not follow
    the last one the page was sent, so it gets the run's whole text so far from the
    buffer in its place (``_catch_up``). Only if the buffer cannot be read either does
    the page show a gap in the text, until the run's reply replaces it."""
    last: dict[str, int] = {}
    for index, push in enumerate(queued):
        if push.message.get("type") == "relaybridge.run.delta":
            last[push.message["event"]["run"]] = index
    return deque(
        push
        for index, push in enumerate(queued)
        if push.message.get("type") != "relaybridge.run.delta"
        or last[push.message["event"]["run"]] == index
    )


class ThreadStreamConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """One page watching one thread's runs."""

    group: str = ""
    thread_key: str = ""

    @property
    def channel_layer_alias(self) -> str:
        """The layer pages listen on: ``RELAYBRIDGE_STREAM_LAYER`` (``default``)."""
        return relay_settings.STREAM_LAYER

    async def connect(self) -> None:
        # run id -> the last seq this socket has (from the snapshot or a delta);
        # absent: never seen; None: the run has ended, so its late deltas are dropped.
        self.runs: dict[str, int | None] = {}
        # run id -> may this socket's user press Stop/Retry on it (can_control).
        self.control: dict[str, bool] = {}
        self.slot: socket_guard.SocketSlot | None = None
        self.user_group = ""
        self.watch: asyncio.Task[None] | None = None
        # The thread's pushes this socket cannot send at once, in order (None: none
        # wait), and the task that works through them (see relaybridge.page_fanout).
        self.queued: deque[page_fanout.Push] | None = None
        self.queue_task: asyncio.Task[None] | None = None
        self.value = str(self.scope["url_route"]["kwargs"].get("thread", ""))
        user = self.scope.get("user")
        if not socket_guard.origin_allowed(self.scope):
            code, thread_key = CLOSE_BAD_ORIGIN, ""
        elif is_thread_value(self.value):
            code, thread_key = await database_sync_to_async(authorize)(user, self.value)
        else:
            # Untrusted input that no adapter should ever see.
            code, thread_key = CLOSE_BAD_THREAD, ""
        if not code:
            self.slot = socket_guard.SocketSlot(user.pk, self.channel_name)
            if not await self.slot.claim():
                self.slot = None
                code = CLOSE_TOO_MANY_SOCKETS
        if code:
            # Accept, then close: a handshake refused before accept reaches the
            # browser as 1006, and the page needs the code to stop reconnecting.
            await self.accept()
            await self.close(code=code)
            return
        self.user_pk = user.pk
        session = self.scope.get("session")
        self.session_key: str | None = getattr(session, "session_key", None)
        self.thread_key = thread_key
        self.group = streams.group_name_for_thread(thread_key)
        self.user_group = socket_guard.user_group_name(user.pk)
        # Join before reading the buffer (see the module docstring). Pushes that
        # arrive meanwhile wait in the queue until the snapshot is sent.
        await self.channel_layer.group_add(self.user_group, self.channel_name)
        self.queued = deque()
        await page_fanout.listeners(self.channel_layer).join(self.group, self)
        await self.accept()
        await self._send_parts(await self._snapshot())
        self._work_through_queue()
        self.watch = asyncio.create_task(self._recheck_periodically())

    def _recheck(self) -> int:
        """0 while the session, its user and ``can_view`` still let this socket stay."""
        user = socket_guard.current_user(self.session_key, self.user_pk)
        if user is None:
            return CLOSE_SESSION_ENDED
        code, thread_key = authorize(user, self.value)
        return code if code or thread_key == self.thread_key else CLOSE_FORBIDDEN

    async def _recheck_periodically(self) -> None:
        while True:
            await asyncio.sleep(relay_settings.SOCKET_RECHECK_INTERVAL)
            try:
                code = await database_sync_to_async(self._recheck)()
                if not code and self.slot is not None:
                    await self.slot.renew()
            except Exception:
                # A database or cache outage must not close every page for good.
                logger.exception("could not re-check a stream socket")
                continue
            if code:
                await self._close_for_good(code)
                return

    async def _close_for_good(self, code: int) -> None:
        """Stop forwarding at once, free the socket's slot, close with ``code``."""
        await self._leave()
        await self.close(code=code)

    async def _leave(self) -> None:
        group, self.group = self.group, ""
        user_group, self.user_group = self.user_group, ""
        if group:
            self._stop_taking(group)
        if user_group:
            await self.channel_layer.group_discard(user_group, self.channel_name)
        slot, self.slot = getattr(self, "slot", None), None
        if slot is not None:
            await slot.release()

    async def _send_parts(self, event: streams.BrowserMessage) -> None:
        """Send ``event``, its long texts in parts (each well within a frame)."""
        for message in streams.page_messages(event):
            await self.send_json(message)

    async def _snapshot(self) -> streams.SnapshotMessage:
        runs = await database_sync_to_async(_active_runs)(self.thread_key)
        texts = await self._read_texts([str(run.run_id) for run in runs])
        for run_id, (_text, seq) in texts.items():
            self.runs[run_id] = seq
        user = self.scope.get("user")
        states = await database_sync_to_async(_states)(user, runs, texts, self.control)
        return streams.snapshot_event(states)

    async def _send_status(self, event: streams.RunStatusMessage) -> None:
        """A pushed ``run.status``, with the buttons only if this viewer may use them."""
        if "control_html" in event:
            run_id = event["run"]
            if run_id not in self.control:
                question = (self.scope.get("user"), run_id, self.thread_key)
                self.control[run_id] = await _control_questions()(question)
            event = streams.for_viewer(event, self.control[run_id])
        await self._send_parts(event)

    async def _read_texts(self, run_ids: list[str]) -> dict[str, tuple[str, int]]:
        texts: dict[str, tuple[str, int]] = {}
        if not run_ids:
            return texts
        buffer = streams.get_stream_buffer()
        try:
            for run_id in run_ids:
                try:
                    texts[run_id] = await buffer.snapshot(run_id)
                except Exception:
                    # Without the buffer the page still gets the runs and their status.
                    logger.exception("could not read the stream buffer of run %s", run_id)
                    texts[run_id] = ("", 0)
        finally:
            # A Redis buffer owns a client on this loop; a socket must not keep it.
            await buffer.close()
        return texts

    async def _catch_up(self, run_id: str, seq: int) -> bool:
        """Send the run's whole text so far in place of delta ``seq``, which does not
        follow the last one this socket sent; False if the buffer lacks it too."""
        text, stored = (await self._read_texts([run_id]))[run_id]
        if stored < seq:
            return False
        event = await database_sync_to_async(_active_status)(run_id, self.thread_key, text, stored)
        # An ended run's reply or error follows on the group, as for every page.
        self.runs[run_id] = None if event is None else stored
        if event is not None:
            await self._send_status(event)
        return True

    # --- the thread's pushes, handed over by relaybridge.page_fanout ------------------

    async def take(self, push: page_fanout.Push) -> None:
        """Send ``push`` at once if nothing needs asking first, else queue it."""
        if self.queued is not None:
            self.queued.append(push)  # behind what waits, or the snapshot
            if len(self.queued) > MAX_QUEUED_PUSHES:
                self.queued = _thinned(self.queued)
            return
        message = push.message
        kind = message.get("type")
        if kind == "relaybridge.run.delta":
            event = message["event"]
            follows = self._delta_follows(event)
            if follows is False:
                return
            if follows:
                self.runs[event["run"]] = event["seq"]
                await self.send(text_data=push.text)
                return
        elif kind in {"relaybridge.run.reply", "relaybridge.run.error"}:
            await self.dispatch(message)  # sends, and asks nothing
            return
        self.queued = deque([push])
        self._work_through_queue()

    def _delta_follows(self, event: streams.RunDeltaMessage) -> bool | None:
        """True if ``event`` is the next delta of a run this socket knows; False if it
        is to be dropped (the run stopped: Relay cannot cancel, tokens keep coming; or
        already sent); None if something must be asked first (a run never seen, a gap)."""
        last = self.runs.get(event["run"], -1)  # -1: never seen
        if last is None or (last >= 0 and event["seq"] <= last):
            return False
        if last >= 0 and event["seq"] == last + 1:
            return True
        return None

    def _stop_taking(self, group: str) -> None:
        page_fanout.listeners(self.channel_layer).leave(group, self)
        self.queued = None
        queue_task, self.queue_task = self.queue_task, None
        if queue_task is not None and queue_task is not asyncio.current_task():
            queue_task.cancel()

    def _work_through_queue(self) -> None:
        """Send what waits in the queue, in order, on a task of this socket's own."""
        if self.queued:
            self.queue_task = asyncio.create_task(self._send_queued())
        else:
            self.queued = None

    async def _send_queued(self) -> None:
        while self.queued:
            push = self.queued.popleft()
            try:
                await self.dispatch(push.message)
            except Exception:
                logger.exception("could not send a pushed %s", push.message.get("type"))
        self.queued = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # However the socket ends (a connect or a handler that raised too), the
            # process's listener must stop handing it the thread's pushes, and the
            # person's socket slot must be freed rather than renewed by a dead socket.
            watch = getattr(self, "watch", None)
            if watch is not None:
                watch.cancel()
            with contextlib.suppress(Exception):
                await self._leave()  # stops the taking first; a no-op after a disconnect

    async def disconnect(self, code: int) -> None:
        watch = getattr(self, "watch", None)
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
        await self._leave()

    async def receive(
        self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any
    ) -> None:
        # The page only ever sends small JSON pings. Anything else (a binary frame,
        # text that is not JSON) is ignored: letting the JSON consumer raise would
        # end the socket with a server error and a traceback in the log.
        if text_data is None or len(text_data) > MAX_CLIENT_MESSAGE_CHARS:
            return
        try:
            content = json.loads(text_data)
        except (ValueError, RecursionError):
            # RecursionError: JSON nested deeper than the interpreter's recursion limit.
            return
        await self.receive_json(content)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        # The stream is one-way; a ping is answered so a page can test the socket.
        if isinstance(content, dict) and content.get("type") == "ping":
            await self.send_json({"type": "pong"})

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every message, which
        # costs each message a trip to a thread and back: at a hundred streaming
        # runs that is most of what a Daphne process does. The stream's handlers
        # reach the database only through database_sync_to_async, which closes
        # stale connections itself, so group messages skip that trip.
        if str(message.get("type", "")).startswith(GROUP_MESSAGE_PREFIX):
            handler = getattr(self, get_handler_name(message), None)
            if handler is not None:
                await handler(message)
                return
        await super().dispatch(message)

    # --- group messages: type "relaybridge.run.delta" -> relaybridge_run_delta --------

    async def relaybridge_run_status(self, message: dict[str, Any]) -> None:
        event: streams.RunStatusMessage = message["event"]
        # A status is authoritative about the stream: a retry starts it again at 0.
        ended = event["status"] in _ENDED
        self.runs[event["run"]] = None if ended else int(event["seq"] or 0)
        await self._send_status(event)

    async def relaybridge_run_delta(self, message: dict[str, Any]) -> None:
        event: streams.RunDeltaMessage = message["event"]
        run_id = event["run"]
        if run_id not in self.runs:
            # A run that started, or ended, while this socket was not watching.
            active = await database_sync_to_async(_is_active)(run_id, self.thread_key)
            self.runs[run_id] = 0 if active else None
        follows = self._delta_follows(event)
        if follows is False:
            return
        if follows is None and await self._catch_up(run_id, event["seq"]):
            return
        self.runs[run_id] = event["seq"]
        await self.send_json(event)

    async def relaybridge_run_reply(self, message: dict[str, Any]) -> None:
        self.runs[message["event"]["run"]] = None
        await self.send_json(message["event"])

    async def relaybridge_run_error(self, message: dict[str, Any]) -> None:
        await self.send_json(message["event"])

    async def relaybridge_snapshot(self, message: dict[str, Any]) -> None:
        event: streams.SnapshotMessage = message["event"]
        # Pushed to every page: the buttons' markup is for no one in particular.
        runs = [{k: v for k, v in run.items() if k != "control_html"} for run in event["runs"]]
        await self.send_json({**event, "runs": runs})

    async def relaybridge_reply_feedback(self, message: dict[str, Any]) -> None:
        # The counts for everyone; the vote itself only to the voter's own pages.
        await self.send_json(feedback.page_event(message, self.scope.get("user")))

    async def relaybridge_socket_close(self, message: dict[str, Any]) -> None:
        # To the person's group: a sign-out names its session, a deactivation none.
        session = str(message.get("session") or "")
        if not self.user_group or (session and session != self.session_key):
            return
        await self._close_for_good(int(message["code"]))


class RefusedPathConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    """A socket path under the stream prefix that names no thread: closed with 4400.

    Without it the router finds no route and the handshake fails with a server error.
    """

    async def connect(self) -> None:
        await self.accept()
        await self.close(code=CLOSE_BAD_THREAD)
