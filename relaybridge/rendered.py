"""An agent reply's HTML: rendered once, when the reply is saved, and reused on every view.

The host's comment model is not relaybridge's, so the copy lives on the run that
saved the reply (``AgentRun.reply_html``, found by ``reply_comment``), with the
:func:`~relaybridge.rendering.render_digest` of the text it was rendered from.
:func:`reply_html` hands out the stored copy while that digest matches the
comment's text as it is now; otherwise -- a reply saved before copies were kept,
a comment edited since, a rendering bound changed -- the text is rendered again
and the copy replaced. An agent comment no run saved (one a host made itself) has
no copy and is rendered on each view, within the renderer's bounds.

A page asks for its thread's copies once (:class:`StoredReplies`, from the page's
one query for the thread's runs), however many replies it shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple

from .adapters import get_adapter
from .models import AgentRun
from .rendering import render_agent_markdown, render_digest


class StoredReply(NamedTuple):
    run_pk: int
    html: str
    digest: str


def store_reply_html(run_pk: int, comment: Any) -> tuple[str, str]:
    """Render the reply ``comment`` saved by run ``run_pk`` and keep the HTML on the
    run; the HTML and the digest of the text it was made from."""
    text = get_adapter().text(comment)
    html, digest = render_agent_markdown(text), render_digest(text)
    AgentRun.objects.filter(pk=run_pk).update(reply_html=html, reply_digest=digest)
    return html, digest


class StoredReplies:
    """The stored reply copies of one thread, by reply comment pk, from its runs (the
    page's one query for them, :class:`relaybridge.page_cache.ThreadRuns`)."""

    def __init__(self, runs: Iterable[AgentRun]) -> None:
        self.by_comment = {
            str(run.reply_comment_id): StoredReply(run.pk, run.reply_html, run.reply_digest)
            for run in runs
            if run.reply_comment_id is not None
        }

    def get(self, comment: Any) -> StoredReply | None:
        return self.by_comment.get(str(comment.pk))


def _stored(comment: Any) -> StoredReply | None:
    row = (
        AgentRun.objects.filter(reply_comment_id=comment.pk)
        .values_list("pk", "reply_html", "reply_digest")
        .first()
    )
    return StoredReply(*row) if row is not None else None


def reply_html(comment: Any, stored: StoredReplies | None = None) -> str:
    """The sanitized HTML of the agent reply ``comment``: the stored copy when current.

    ``stored``: the page's copies of the comment's thread; without it, one query.
    """
    text = get_adapter().text(comment)
    digest = render_digest(text)
    found = stored.get(comment) if stored is not None else _stored(comment)
    if found is not None and found.digest == digest:
        return found.html
    html = render_agent_markdown(text)
    if found is not None:
        AgentRun.objects.filter(pk=found.run_pk).update(reply_html=html, reply_digest=digest)
        if stored is not None:
            stored.by_comment[str(comment.pk)] = StoredReply(found.run_pk, html, digest)
    return html
