"""The stream socket's URL: ``/<RELAYBRIDGE_STREAM_PATH><thread value>/``.

A page opens ``/ws/tasks/42/`` (the default path; ``42`` is the *thread value*)
and the consumer finds the thread back from that value. The value comes back from
the browser, so it is untrusted: it must match :data:`THREAD_VALUE` before any
lookup, and the consumer refuses anything else with close code 4400.

Which value stands for a thread is the adapter's choice:

* ``thread_url_value(thread)`` and ``thread_by_url(value)``, when the adapter
  defines both: its own ids in the URL (for example a slug, or a pk when its
  ``thread_key`` holds characters the pattern refuses);
* else, with :class:`~relaybridge.adapters.DefaultCommentAdapter`, the thread's
  primary key;
* else the adapter's ``thread_key(thread)``, read back with ``thread_by_key``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from django.core.exceptions import ImproperlyConfigured

from .adapters import CommentAdapter, DefaultCommentAdapter, get_adapter
from .conf import relay_settings

#: What a thread value in a stream URL may look like: letters, digits, ``_.~-``,
#: not starting with a dot (a browser would treat ``..`` as a path step), at most 128.
THREAD_VALUE: Final = re.compile(r"[A-Za-z0-9_~-][A-Za-z0-9_.~-]{0,127}")


def is_thread_value(value: str) -> bool:
    return THREAD_VALUE.fullmatch(value) is not None


def thread_url_value(adapter: CommentAdapter, thread: Any) -> str:
    """The value that stands for ``thread`` in its stream URL (see the module docstring)."""
    to_url = getattr(adapter, "thread_url_value", None)
    if callable(to_url):
        value = str(to_url(thread))
    elif isinstance(adapter, DefaultCommentAdapter):
        value = str(thread.pk)
    else:
        value = adapter.thread_key(thread)
    if not is_thread_value(value):
        raise ImproperlyConfigured(
            f"{type(adapter).__name__} gives the stream URL value {value!r}, which does not"
            f" match {THREAD_VALUE.pattern}: define thread_url_value() and thread_by_url()"
            " on the adapter (see the README's page contract)"
        )
    return value


def thread_for_url(adapter: CommentAdapter, value: str) -> Any | None:
    """The thread a stream URL names, or None. ``value`` must already be checked."""
    lookup = getattr(adapter, "thread_by_url", None)
    if callable(lookup):
        return lookup(value)
    if isinstance(adapter, DefaultCommentAdapter):
        meta = adapter.thread_model()._meta
        return adapter.thread_by_key(f"{meta.app_label}.{meta.model_name}.{value}")
    return adapter.thread_by_key(value)


def stream_route() -> str:
    """The route of ``relaybridge.routing``: ``ws/tasks/<path:thread>/`` by default.

    ``path``, not ``str``: a value with a slash still reaches the consumer, which
    refuses it with a close code instead of the router failing the handshake.
    """
    return f"{relay_settings.STREAM_PATH}<path:thread>/"


def stream_prefix_pattern() -> str | None:
    """A regex for every path under the stream prefix (``ws/tasks`` and below), or None
    when the prefix is empty (the stream route then takes every path ending in ``/``).
    ``.*`` does not match a line break, so the pattern is anchored without ``$``."""
    prefix = relay_settings.STREAM_PATH.rstrip("/")
    return rf"^{re.escape(prefix)}(?:/|\Z)" if prefix else None


def stream_path(thread: Any) -> str:
    """The path a page opens to watch ``thread``: ``/ws/tasks/42/`` by default."""
    value = thread_url_value(get_adapter(), thread)
    return f"/{relay_settings.STREAM_PATH}{value}/"
