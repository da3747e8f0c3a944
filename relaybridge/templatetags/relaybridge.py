"""Template tags a host uses to put relaybridge on its pages.

``{% load relaybridge %}`` and then:

* ``{% relaybridge_stream thread %}`` -- once per page: the stream area the scripts
  attach to (WebSocket path, Retry/Stop URL templates, the runs to show and the
  scripts' translated words as JSON, an ``aria-live`` region for announcements).
* ``{% relaybridge_runs comment %}`` -- under each comment: its runs that have not
  ended in a reply, one ``relaybridge/run.html`` each ("Athena is thinking…", a
  failure with its reason, a stop), with plain POST forms for Retry and Stop (for
  a viewer who may use them), so the page works without JavaScript.
* ``{% relaybridge_reply comment %}`` -- an agent's reply comment as
  ``relaybridge/reply.html`` renders it: the same markup the stream inserts live.
* ``{% relaybridge_mention_hint %}`` -- below the comment box: the agents one can
  mention, with "unavailable" for those Relay refused; with JavaScript, the ``@``
  autocomplete and the "will call" preview of the comment box it describes.
* ``{{ comment.body|relaybridge_markdown }}`` -- an agent's Markdown as sanitized
  HTML; ``{{ agent_id|relaybridge_agent_name }}`` -- an agent's display name.

Stop and Retry are drawn only for a viewer the adapter's ``can_control`` allows
(the viewer is ``request.user``, else the context's ``user``; with neither, nobody
gets buttons): in the runs' forms and in the stream area's JSON alike.

All run queries of one page share one query per thread: the runs are loaded once
(cached on the request, else on the render context; :mod:`relaybridge.page_cache`)
and indexed by comment, so a page of 200 comments costs what a page of 5 does. The
replies' HTML, rendered once when each reply was saved, comes with the same query
(:mod:`relaybridge.rendered`); ``relaybridge_markdown`` renders its text
on every call, so agents' replies are best shown through ``{% relaybridge_reply %}``
(``body_html`` in ``relaybridge/reply.html``).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Final

from django import template
from django.template import Engine
from django.template.context import Context
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify

from ..adapters import get_adapter
from ..agents import mentionable_agents
from ..fragments import (
    GIVEN_RUNS,
    REPLY_TEMPLATE,
    RETRYABLE_STATUSES,
    RUN_TOKEN,
    STOPPABLE_STATUSES,
    VISIBLE_STATUSES,
    has_controls,
    page_texts,
    reply_context,
    run_status_text,
    run_url,
    run_url_template,
    run_view,
)
from ..models import AgentRun
from ..page_cache import ThreadRuns, context_request, page_values, thread_runs
from ..rendered import StoredReplies, reply_html
from ..rendering import render_agent_markdown
from ..revisions import EDITED_CODE, ThreadRevisions, ask_again_offers
from ..stream_urls import stream_path
from ..streams import run_state
from .relaybridge_replies import register as _replies

register = template.Library()

__all__ = [
    "RETRYABLE_STATUSES",
    "RUN_TOKEN",
    "STOPPABLE_STATUSES",
    "VISIBLE_STATUSES",
    "run_status_text",
    "run_url",
    "run_url_template",
    "visible_runs",
]

#: Beside GIVEN_RUNS: the reply comment's "ask again" offers, from relaybridge_reply.
GIVEN_OFFERS: Final = "relaybridge_given_offers"


def visible_runs(thread: Any) -> list[AgentRun]:
    """The thread's runs a page shows, oldest first."""
    return _visible_runs_by_key(get_adapter().thread_key(thread))


def _visible_runs_by_key(thread_key: str) -> list[AgentRun]:
    # Not the runs of deleted comments (kept for the ledger), nor runs stopped by an
    # edit (the next revision, under the same comment, asks the new text).
    return list(
        AgentRun.objects.filter(
            thread_key=thread_key, status__in=VISIBLE_STATUSES, comment__isnull=False
        )
        .exclude(error_code=EDITED_CODE)
        .order_by("queued_at", "id")
    )


def _viewer(context: Context) -> Any:
    request = context_request(context)
    user = getattr(request, "user", None) if request is not None else None
    return user if user is not None else context.get("user")


def _controls(context: Context, run: AgentRun) -> bool:
    """May the page's viewer press Stop and Retry on ``run``? Asked only when the
    run's status has a button (no permission lookups for runs that have none)."""
    if not has_controls(run):
        return False
    viewer = _viewer(context)
    return viewer is not None and bool(get_adapter().can_control(viewer, run))


def _view(context: Context, run: AgentRun) -> dict[str, Any]:
    return run_view(run, controls=_controls(context, run))


def _cached_replies(context: Context, thread_key: str) -> StoredReplies:
    # The stored HTML of the thread's replies: from the page's one query for its runs.
    return thread_runs(context, thread_key).replies


def _cached_revisions(context: Context, thread_key: str) -> ThreadRevisions:
    # Regenerate buttons and "ask again" offers: from the same query as the runs.
    return thread_runs(context, thread_key).revisions


def _may_press(context: Context, revisions: ThreadRevisions, run_id: str) -> bool:
    """May the page's viewer press Regenerate / Ask again on the run? As for Retry."""
    run = revisions.runs.get(run_id)
    viewer = _viewer(context)
    return run is not None and viewer is not None and bool(get_adapter().can_control(viewer, run))


def _offers(context: Context, comment: Any, revisions: ThreadRevisions) -> list[dict[str, str]]:
    offers = ask_again_offers(comment, revisions)
    return [offer for offer in offers if _may_press(context, revisions, offer["run_id"])]


@register.inclusion_tag("relaybridge/stream.html", takes_context=True)
def relaybridge_stream(context: Context, thread: Any, ws_path: str = "") -> dict[str, Any]:
    """The stream area of ``thread``'s page (once per page, anywhere on it)."""
    with page_values(context):
        return _stream_values(context, thread, ws_path)


def _stream_values(context: Context, thread: Any, ws_path: str) -> dict[str, Any]:
    thread_key = get_adapter().thread_key(thread)
    # Without their texts: a run's text is in its markup ({% relaybridge_runs %}),
    # where the script reads it, so the page carries it once.
    states = [
        run_state(run, embed_text=False, controls=_controls(context, run))
        for run in thread_runs(context, thread_key).runs
    ]
    dom_id = f"relaybridge-{slugify(thread_key.replace('.', '-'))}"
    return {
        "thread_key": thread_key,
        "dom_id": dom_id,
        "json_id": f"{dom_id}-runs",
        "ws_path": ws_path or stream_path(thread),
        "retry_url": run_url_template("retry"),
        "stop_url": run_url_template("stop"),
        "runs": states,
        "texts_id": f"{dom_id}-texts",
        "texts": page_texts(),
    }


#: The runs of one comment (overridable); the package's own copy is drawn without a render
#: for a comment with no runs, most of a long thread's (see :func:`relaybridge_runs`).
RUNS_TEMPLATE: Final = "relaybridge/runs.html"
_PACKAGE_RUNS_TEMPLATE: Final = (
    Path(__file__).resolve().parent.parent / "templates" / "relaybridge" / "runs.html"
)
#: What the package's ``runs.html`` renders for a comment without runs.
_EMPTY_RUNS: Final = (
    '\n<div class="relaybridge-runs" data-relaybridge-comment-runs="{}">\n\n</div>\n\n'
)
_RUNS_RENDER_KEY: Final = "relaybridge.runs_render"


class _RunsRender:
    """What every ``{% relaybridge_runs %}`` of one template render shares, looked up
    once: ``runs.html`` as the page's engine finds it, whether it is the package's own,
    the adapter and the threads' runs (200 calls on a page of 200 comments)."""

    def __init__(self, context: Context) -> None:
        engine = context.template.engine if context.template is not None else Engine.get_default()
        self.template = engine.get_template(RUNS_TEMPLATE)
        origin = getattr(getattr(self.template, "origin", None), "name", None)
        self.stock = bool(origin) and Path(str(origin)).resolve() == _PACKAGE_RUNS_TEMPLATE
        self.adapter = get_adapter()
        self._threads: dict[str, ThreadRuns] = {}

    def thread(self, context: Context, comment: Any) -> ThreadRuns:
        thread_key = self.adapter.comment_thread_key(comment)
        # Kept here as well as on the request (thread_runs): finding the request's copy
        # again for each of 200 comments cost 8 % of these tags' time.
        found = self._threads.get(thread_key)
        if found is None:
            found = self._threads[thread_key] = thread_runs(context, thread_key)
        return found


def _runs_render(context: Context) -> _RunsRender:
    found: _RunsRender | None = context.render_context.get(_RUNS_RENDER_KEY)
    if found is None:
        found = context.render_context[_RUNS_RENDER_KEY] = _RunsRender(context)
    return found


@register.simple_tag(takes_context=True)
def relaybridge_runs(context: Context, comment: Any) -> SafeString:
    """The runs of ``comment`` that have not ended in a reply, with Retry/Stop forms,
    as ``relaybridge/runs.html`` renders them (an inclusion tag's context: ``comment_id``,
    ``runs``, ``offers``, ``csrf_token``).

    Most comments of a long thread have no runs: with the package's own template their
    empty container is written out directly, which keeps a page of 200 comments from
    paying for 200 template renders. An overridden ``runs.html`` is always rendered.
    """
    comment_id = str(comment.pk)
    shared = _runs_render(context)
    given = context.get(GIVEN_RUNS)
    offers: list[dict[str, str]] = []
    if given is not None and given[0] == comment_id:
        views = given[1]  # from relaybridge_reply, or none for a reply rendered live
        offers = context.get(GIVEN_OFFERS) or []
    else:
        thread = shared.thread(context, comment)
        views = []
        # Only a comment with runs has runs to show or an offer (which follows an edit of
        # an answered question): the others, most of a long thread's, skip the lookups.
        if comment_id in thread.revisions.latest:
            with page_values(context):
                views = [_view(context, run) for run in thread.by_comment.get(comment_id, ())]
                offers = _offers(context, comment, thread.revisions)
    if not views and not offers and shared.stock:
        # What format_html() makes of it, without its lazy-text checks (200 calls a page).
        return SafeString(_EMPTY_RUNS.format(html.escape(comment_id)))
    values = {
        "comment_id": comment_id,
        "runs": views,
        # "Ask <agent> again with the edited text", after an edit of an answered question.
        "offers": offers,
        "csrf_token": context.get("csrf_token"),
    }
    rendered: SafeString = shared.template.render(context.new(values))
    return rendered


def _comment_runs(context: Context, comment: Any) -> list[AgentRun]:
    thread_key = get_adapter().comment_thread_key(comment)
    return thread_runs(context, thread_key).by_comment.get(str(comment.pk), [])


@register.inclusion_tag(REPLY_TEMPLATE, takes_context=True)
def relaybridge_reply(context: Context, comment: Any) -> dict[str, Any]:
    """An agent's reply ``comment`` as ``relaybridge/reply.html`` renders it.

    The stream's ``run.reply`` carries the same template's rendering, so a reply
    looks the same inserted live and after a reload.
    """
    with page_values(context):
        return _reply_values(context, comment)


def _reply_values(context: Context, comment: Any) -> dict[str, Any]:
    thread_key = get_adapter().comment_thread_key(comment)
    body_html = reply_html(comment, _cached_replies(context, thread_key))
    revisions = _cached_revisions(context, thread_key)
    values = reply_context(comment, body_html=body_html, revisions=revisions)
    values[GIVEN_OFFERS] = _offers(context, comment, revisions)
    row = revisions.by_reply.get(str(comment.pk))
    if row is not None and not _may_press(context, revisions, row.run_id):
        # Drawn for those who may press it (the live fragment has it for everyone:
        # the endpoint refuses the others).
        values["regenerate_url"] = ""
    # The included template has a render context of its own: its runs are looked
    # up here, from the page's one query per thread.
    values[GIVEN_RUNS] = (
        str(comment.pk),
        [_view(context, run) for run in _comment_runs(context, comment)],
    )
    return values


@register.inclusion_tag("relaybridge/mention_hint.html", takes_context=True)
def relaybridge_mention_hint(
    context: Context, hint_id: str = "relaybridge-mention-hint", thread: Any = None
) -> dict[str, Any]:
    """Which agents one can @mention (point the textarea's ``aria-describedby`` at it).

    With JavaScript, the same list drives the comment box's ``@`` autocomplete and a
    preview of the agents the comment will call. Agents the signed-in user may not
    call (the adapter's ``can_mention``, on ``thread`` when given) are marked "not
    available to you"; with ``thread``, the preview also checks that thread's quotas.
    """
    adapter = get_adapter()
    request = context_request(context)
    user = getattr(request, "user", None)
    person = user if getattr(user, "is_authenticated", False) else None
    agents: list[dict[str, Any]] = []
    with page_values(context):
        infos = mentionable_agents()
    for info in infos:
        agent = dict(info)
        agent["not_permitted"] = not adapter.can_mention(person, str(info["agent_id"]), thread)
        agents.append(agent)
    return {
        "hint_id": hint_id,
        "agents_json_id": f"{hint_id}-agents",
        "agents": agents,
        "thread_key": adapter.thread_key(thread) if thread is not None else "",
        "preview_url": _reverse_or("relaybridge:mention-preview", "/relaybridge/mentions/preview/"),
    }


def _reverse_or(name: str, default: str) -> str:
    """``reverse(name)``, or the documented default path when relaybridge.urls is elsewhere."""
    try:
        return reverse(name)
    except NoReverseMatch:
        return default


@register.filter
def relaybridge_markdown(text: Any) -> SafeString:
    """An agent's Markdown as sanitized HTML (the allow-list makes it safe to mark so).

    Rendered on every call (within the renderer's bounds); a saved reply's stored
    copy is ``body_html`` in ``relaybridge/reply.html``.
    """
    return mark_safe(render_agent_markdown(str(text or "")))  # sanitized by nh3 just above


@register.filter
def relaybridge_agent_name(agent_id: Any) -> str:
    return get_adapter().agent_display_name(str(agent_id))


# "Reply to", the votes and the follow-up notice come with {% load relaybridge %} too.
register.tags.update(_replies.tags)
