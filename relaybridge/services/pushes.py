"""Sync access to the stream for request handlers: the text-so-far buffer and pushes.

The Retry and Stop views run outside the relay worker, maybe on another machine;
what they change reaches the pages through the thread's channel-layer group, like
the worker's own pushes. Each call opens its own buffer client and closes it, since
a Redis client belongs to the event loop ``async_to_sync`` runs it on.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from asgiref.sync import async_to_sync

from .. import streams
from ..conf import redact
from ..models import AgentRun

logger = logging.getLogger("relaybridge")

T = TypeVar("T")


def _with_buffer(use: Callable[[streams.StreamBuffer], Awaitable[T]]) -> T:
    async def run() -> T:
        buffer = streams.get_stream_buffer()
        try:
            return await use(buffer)
        finally:
            await buffer.close()

    return async_to_sync(run)()


def read_stream(run_id: str) -> tuple[str, int]:
    """The run's text so far and last seq (``("", 0)`` if the buffer cannot be read)."""
    try:
        return _with_buffer(lambda buffer: buffer.snapshot(run_id))
    except Exception:
        logger.exception("could not read the stream buffer of run %s", run_id)
        return "", 0


def clear_stream(run_id: str) -> None:
    """Forget the run's streamed text (it ended, or starts again from seq 1)."""
    try:
        _with_buffer(lambda buffer: buffer.clear(run_id))
    except Exception:
        logger.exception("could not clear the stream buffer of run %s", run_id)


def settle_stopped_text(run_id: str, partial: str, seq: int) -> tuple[str, int]:
    """The text a just-stopped run keeps, and its seq: ``partial`` or more.

    Stop reads the text so far, stops the run and pushes the stop (the pages drop
    the run's tokens from then on). A token the relay worker buffered in between
    may have reached a page before that push, and pages never show less text than
    they showed: read again after the push, and keep the longer text when it
    carries on ``partial``.
    """
    text, later = read_stream(run_id)
    if later <= seq or len(text) <= len(partial) or not text.startswith(partial):
        return partial, seq
    AgentRun.objects.filter(
        run_id=run_id, status=AgentRun.Status.STOPPED, partial_text=redact(partial)
    ).update(partial_text=redact(text))
    return text, later


def push_status(run: AgentRun, text: str = "", seq: int = 0) -> bool:
    """Send the run's ``run.status`` to its thread's group; False if the layer failed.

    The change is already in the database, so a page that misses this push still
    sees it on its next snapshot or reload.
    """
    layer = streams.stream_layer()
    if layer is None:
        return False
    group = streams.group_name_for_thread(run.thread_key)
    message = streams.group_message(streams.status_event(run, text, seq))
    try:
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        logger.exception("could not push the status of run %s to %s", run.run_id, group)
        return False
    return True
