"""What one page loads once, however many of relaybridge's tags ask for it.

A thread's page draws ``{% relaybridge_runs %}`` under every comment, and its
replies, votes, offers and stream area each need the thread's runs. They share:

* :class:`ThreadRuns` -- every run of the thread, from one query per thread and
  page: the visible ones by comment, their revisions, the replies' stored HTML and
  the replied runs the votes belong to;
* the agent directory and the runs' URLs (:func:`page_values`), worked out once
  per page instead of once per agent name or run shown.

Both are kept on the request when the context has one (a page drawn by several
templates, as django-contrib-comments draws its comments, still loads them once),
else on the render context (one template render).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Any

from django.template.context import Context

from .fragments import VISIBLE_STATUSES
from .models import AgentRun
from .page_memo import page_memo
from .rendered import StoredReplies
from .revisions import EDITED_CODE, ThreadRevisions


def context_request(context: Context) -> Any:
    return getattr(context, "request", None) or context.get("request")


def page_dict(context: Context, name: str) -> dict[str, Any]:
    """The page's dict called ``name``: on the request, else on the render context."""
    request = context_request(context)
    if request is not None:
        attribute = "_" + name.replace(".", "_")
        cache: dict[str, Any] | None = getattr(request, attribute, None)
        if cache is None:
            cache = {}
            setattr(request, attribute, cache)
        return cache
    # The render context's bottom layer: every {% include %} gets a layer of its own.
    shared: Any = context.render_context.dicts[0]
    found: dict[str, Any] = shared.setdefault(name, {})
    return found


def page_values(context: Context) -> AbstractContextManager[None]:
    """Within it, the agent directory and the runs' URLs are worked out once per page
    (see :mod:`relaybridge.page_memo`)."""
    return page_memo(page_dict(context, "relaybridge.page_memo"))


def _visible(run: AgentRun) -> bool:
    # Not the runs of deleted comments (kept for the ledger), nor runs stopped by an
    # edit (the next revision, under the same comment, asks the new text).
    return (
        run.comment_id is not None
        and run.status in VISIBLE_STATUSES
        and run.error_code != EDITED_CODE
    )


def replied_by_reply(runs: Iterable[AgentRun]) -> dict[str, AgentRun]:
    """The replied runs among ``runs``, by their reply comment's pk (as a string)."""
    return {
        str(run.reply_comment_id): run
        for run in runs
        if run.status == AgentRun.Status.REPLIED and run.reply_comment_id is not None
    }


class ThreadRuns:
    """One thread's runs, loaded once: the visible ones indexed by comment, the
    revisions the Regenerate buttons and "ask again" offers need, the replies'
    stored HTML and the replied runs by reply comment (for the votes)."""

    def __init__(self, thread_key: str) -> None:
        # One query for all of them (they were three): a reply whose question was
        # deleted since (``comment`` NULL) still has its HTML and its votes.
        every = list(
            AgentRun.objects.filter(thread_key=thread_key)
            .defer("payload")
            .order_by("queued_at", "id")
        )
        self.runs = [run for run in every if _visible(run)]
        self.by_comment: dict[str, list[AgentRun]] = {}
        for run in self.runs:
            self.by_comment.setdefault(str(run.comment_id), []).append(run)
        asked = [run for run in every if run.comment_id is not None]
        self.revisions = ThreadRevisions(thread_key, asked)
        self.replies = StoredReplies(every)
        self.replied = replied_by_reply(every)


def thread_runs(context: Context, thread_key: str) -> ThreadRuns:
    """The page's :class:`ThreadRuns` of ``thread_key`` (one query per thread and page)."""
    cache = page_dict(context, "relaybridge.thread_runs")
    found: ThreadRuns | None = cache.get(thread_key)
    if found is None:
        found = cache[thread_key] = ThreadRuns(thread_key)
    return found
