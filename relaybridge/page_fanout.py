"""One listener per thread and server process, handing each push to the thread's pages.

Every page socket of a thread used to be a member of the thread's group on the
stream layer. A delta pushed to a thread with 500 pages open in one Daphne process
was then received 500 times: each socket decoded the message, woke its own task
(Channels' receive loop makes a task and a wait per message) and encoded the same
JSON. At 20 tokens a second that is most of what the process does, and its garbage
wakes the collector for pauses of tens of milliseconds.

Here the process joins the thread's group once, with a channel of its own, while
at least one of its pages watches the thread. Each message is received, and its
JSON encoded, once; each page then takes it in turn (:class:`Page`). A page takes
what it can answer at once (the next delta of a run, a reply) straight onto its
socket; anything that needs a query or a read first goes to a queue of the page's
own, worked through by a task of its own, so one page waiting on the database never
holds up the others, and the page's messages stay in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import weakref
from collections.abc import Iterable
from typing import Any, Protocol

logger = logging.getLogger("relaybridge")


class Push:
    """One group message, as every page of the process gets it."""

    __slots__ = ("_text", "message")

    def __init__(self, message: dict[str, Any]) -> None:
        self.message = message
        self._text: str | None = None

    @property
    def text(self) -> str:
        """The message's ``event`` as the JSON a page is sent, encoded once."""
        if self._text is None:
            self._text = json.dumps(self.message["event"])
        return self._text


class Page(Protocol):
    """What the listener needs of a page socket."""

    async def take(self, push: Push) -> None:
        """Send ``push`` on, or queue it; must not wait on anything but the socket."""


class _Listener:
    """The process's membership of one group, and the pages it hands messages to."""

    def __init__(self) -> None:
        self.pages: dict[Page, None] = {}  # insertion-ordered set
        self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.task: asyncio.Task[None] | None = None


class Listeners:
    """The groups one event loop (one server process) listens to on one layer."""

    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self._groups: dict[str, _Listener] = {}

    def pages(self, group: str) -> Iterable[Page]:
        listener = self._groups.get(group)
        return tuple(listener.pages) if listener is not None else ()

    async def join(self, group: str, page: Page) -> None:
        """Hand ``page`` the group's messages from the moment this returns."""
        listener = self._groups.get(group)
        if listener is None:
            listener = self._groups[group] = _Listener()
            listener.task = asyncio.create_task(self._listen(group, listener))
            listener.task.add_done_callback(lambda _task: self._forget(group, listener))
        listener.pages[page] = None
        try:
            # Shielded: a page whose connect is cancelled must not cancel the
            # subscription the other pages of the thread wait for.
            await asyncio.shield(listener.ready)
        except BaseException:
            self.leave(group, page)
            raise

    def leave(self, group: str, page: Page) -> asyncio.Task[None] | None:
        """Hand ``page`` nothing more. The last page of a group ends the listening:
        then the task that leaves the group on the layer, else None."""
        listener = self._groups.get(group)
        if listener is None or page not in listener.pages:
            return None
        del listener.pages[page]
        if listener.pages:
            return None
        # The last page of the thread here: a page joining from now on starts anew.
        del self._groups[group]
        if listener.task is not None:
            listener.task.cancel()  # its own finally leaves the group
        return listener.task

    def _forget(self, group: str, listener: _Listener) -> None:
        # However the listening ended, a page joining later must start it anew
        # rather than wait on one that hears nothing.
        if self._groups.get(group) is listener:
            del self._groups[group]

    async def _listen(self, group: str, listener: _Listener) -> None:
        channel = ""
        try:
            channel = await self.layer.new_channel()
            await self.layer.group_add(group, channel)
        except BaseException as error:
            if channel:
                # The Pub/Sub layer counts the channel a member before it subscribes:
                # left there, it would gather every later push of the thread.
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.layer.group_discard(group, channel))
            if not isinstance(error, Exception):  # cancelled
                listener.ready.cancel()
                raise
            # Every page waiting to join learns why (its connect fails, as it would
            # have without the listener); a later page tries again.
            self._forget(group, listener)
            listener.ready.set_exception(error)
            logger.exception("could not listen to %s for this process's pages", group)
            return
        listener.ready.set_result(channel)
        renewing = asyncio.create_task(self._renew(group, channel))
        try:
            while True:
                try:
                    message = await self.layer.receive(channel)
                except Exception:
                    # Redis gone for a moment: the pages stay, and so does the listening.
                    logger.exception(
                        "could not receive %s's pushes; trying again in %s s", group, RETRY_SECONDS
                    )
                    await asyncio.sleep(RETRY_SECONDS)
                    continue
                push = Push(message)
                for page in tuple(listener.pages):
                    if page not in listener.pages:
                        continue  # left while an earlier page took the push
                    try:
                        await page.take(push)
                    except Exception:
                        # One broken page must not keep the message from the others.
                        logger.exception("a page of %s could not take a pushed message", group)
        finally:
            renewing.cancel()
            with contextlib.suppress(Exception):
                await asyncio.shield(self.layer.group_discard(group, channel))

    async def _renew(self, group: str, channel: str) -> None:
        """Join the group again now and then: a layer forgets a member after its
        ``group_expiry`` (a day in channels_redis and the in-memory layer), and a
        popular thread has a page open in this process for longer than that."""
        every = renew_interval(self.layer)
        while True:
            await asyncio.sleep(every)
            try:
                await self.layer.group_add(group, channel)
            except Exception:
                logger.exception("could not renew this process's membership of %s", group)


#: After a failed receive, the listener tries again this many seconds later.
RETRY_SECONDS = 1.0
#: The longest time between two renewals of a membership.
RENEW_SECONDS = 3600.0


def renew_interval(layer: Any) -> float:
    """Seconds between renewals: an hour, or a quarter of a shorter ``group_expiry``."""
    expiry = getattr(layer, "group_expiry", None)
    if isinstance(expiry, int | float) and expiry > 0:
        return min(RENEW_SECONDS, expiry / 4)
    return RENEW_SECONDS


#: Per event loop and layer object: Daphne runs one loop per process.
_listeners: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, Listeners]] = (
    weakref.WeakKeyDictionary()
)


def listeners(layer: Any) -> Listeners:
    """This event loop's :class:`Listeners` on ``layer``."""
    per_layer = _listeners.setdefault(asyncio.get_running_loop(), {})
    found = per_layer.get(id(layer))
    if found is None or found.layer is not layer:
        found = per_layer[id(layer)] = Listeners(layer)
    return found
