"""Template tags a host uses to put relaybridge on its pages.

``{% load relaybridge %}`` and then:

* ``{% relaybridge_stream thread %}`` -- once per page: the stream area the script
  attaches to (WebSocket path, Retry/Stop URL templates, the runs to show as JSON,
  an ``aria-live`` region for status announcements).
* ``{% relaybridge_runs comment %}`` -- under each comment: its runs that have not
  ended in a reply ("Athena is thinking…", a failure with its reason, a stop), with
  plain POST forms for Retry and Stop, so the page works without JavaScript.
* ``{% relaybridge_mention_hint %}`` -- below the comment box: the agents one can
  mention, with "unavailable" for those Relay refused; with JavaScript, the ``@``
  autocomplete and the "will call" preview of the comment box it describes.
* ``{{ comment.body|relaybridge_markdown }}`` -- an agent's Markdown as sanitized
  HTML; ``{{ agent_id|relaybridge_agent_name }}`` -- an agent's display name.

All run queries of one page share one query per thread: the runs are loaded once
(cached on the request, else on the render context) and indexed by comment, so a
page of 200 comments costs what a page of 5 does.
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from django import template
from django.template.context import Context
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import slugify
from django.utils.translation import gettext

from ..adapters import DefaultCommentAdapter, get_adapter
from ..agents import mentionable_agents
from ..models import ACTIVE_STATUSES, AgentRun
from ..protocol.policy import describe_error, format_delay
from ..rendering import render_agent_markdown
from ..streams import run_state

register = template.Library()

Status = AgentRun.Status

#: Runs a page shows: those still going, and those that ended without a reply.
VISIBLE_STATUSES: Final = frozenset(
    {*ACTIVE_STATUSES, Status.FAILED, Status.STOPPED, Status.REFUSED}
)
#: Which runs get which button (the endpoints check again; this is only the offer).
RETRYABLE_STATUSES: Final = frozenset({Status.FAILED, Status.STOPPED})
STOPPABLE_STATUSES: Final = frozenset({Status.ACCEPTED, Status.STREAMING})
#: The token in the URL templates the script replaces with a run id.
RUN_TOKEN: Final = "{run}"
_ZERO_UUID: Final = "00000000-0000-0000-0000-000000000000"
_CACHE_KEY: Final = "relaybridge.visible_runs"
_CACHE_ATTRIBUTE: Final = "_relaybridge_visible_runs"
#: Where ``relaybridge.routing`` serves the thread streams.
WS_PREFIX: Final = "/ws/tasks/"


def visible_runs(thread: Any) -> list[AgentRun]:
    """The thread's runs a page shows, oldest first."""
    return _visible_runs_by_key(get_adapter().thread_key(thread))


def _visible_runs_by_key(thread_key: str) -> list[AgentRun]:
    return list(
        AgentRun.objects.filter(thread_key=thread_key, status__in=VISIBLE_STATUSES).order_by(
            "queued_at", "id"
        )
    )


class _ThreadRuns:
    """One thread's visible runs, loaded once, and indexed by comment."""

    def __init__(self, runs: list[AgentRun]) -> None:
        self.runs = runs
        self.by_comment: dict[str, list[AgentRun]] = {}
        for run in runs:
            self.by_comment.setdefault(str(run.comment_id), []).append(run)


def _page_cache(context: Context) -> dict[str, _ThreadRuns]:
    # On the request when there is one: a page drawn by several templates (the
    # comments from their own, as django-contrib-comments does) still loads each
    # thread's runs once. Else on the render context (one template render).
    request = getattr(context, "request", None) or context.get("request")
    if request is not None:
        cache: dict[str, _ThreadRuns] | None = getattr(request, _CACHE_ATTRIBUTE, None)
        if cache is None:
            cache = {}
            setattr(request, _CACHE_ATTRIBUTE, cache)
        return cache
    found: dict[str, _ThreadRuns] | None = context.render_context.get(_CACHE_KEY)
    if found is None:
        found = {}
        context.render_context[_CACHE_KEY] = found
    return found


def _cached_runs(context: Context, thread_key: str) -> _ThreadRuns:
    # One query per thread and page, however many comments ask.
    cache = _page_cache(context)
    if thread_key not in cache:
        cache[thread_key] = _ThreadRuns(_visible_runs_by_key(thread_key))
    return cache[thread_key]


def run_url_template(action: str) -> str:
    """The URL of a run's ``retry``/``stop`` endpoint with ``{run}`` for its id.

    Reversed from ``relaybridge:<action>-run`` when the host includes
    ``relaybridge.urls``; otherwise the documented default path.
    """
    try:
        url = reverse(f"relaybridge:{action}-run", kwargs={"run_id": _ZERO_UUID})
    except NoReverseMatch:
        return f"/relaybridge/runs/{RUN_TOKEN}/{action}/"
    return url.replace(_ZERO_UUID, RUN_TOKEN)


def run_url(action: str, run: AgentRun) -> str:
    return run_url_template(action).replace(RUN_TOKEN, str(run.run_id))


def default_ws_path(thread: Any) -> str:
    """The stream socket of ``thread`` (``relaybridge.routing``): ``/ws/tasks/<thread>/``.

    ``<thread>`` is what :func:`relaybridge.consumers.thread_for_url` reads back: an
    adapter's own ``thread_url_value(thread)`` if it has one (with ``thread_by_url``),
    else the primary key for the default adapter and the thread key for others.
    """
    adapter = get_adapter()
    to_url = getattr(adapter, "thread_url_value", None)
    if callable(to_url):
        value = str(to_url(thread))
    elif isinstance(adapter, DefaultCommentAdapter):
        value = str(thread.pk)
    else:
        value = adapter.thread_key(thread)
    return f"{WS_PREFIX}{quote(value, safe='')}/"


def run_status_text(run: AgentRun, name: str) -> str:
    """What a person reads about a run before the script takes over."""
    if run.status in (Status.QUEUED, Status.SENDING, Status.ACCEPTED):
        return f"{name} is thinking…"
    if run.status == Status.STREAMING:
        return f"{name} is writing…"
    reason = run.error_message or (
        describe_error(run.error_code, agent=name) if run.error_code else ""
    )
    if run.status == Status.RETRYING:
        state = run_state(run)
        wait = state["retry_in"]
        when = f"retrying in {format_delay(wait)}" if wait is not None else "retrying soon"
        return f"{reason or f'{name} is unavailable'} — {when}"
    if run.status == Status.STOPPED:
        return f"{name} was stopped" + (f": {reason}" if reason else ".")
    if run.status == Status.REFUSED:
        # The reason is stored whole ("Not sent: too many agent replies …").
        return reason or gettext("Not sent: %(name)s was not asked.") % {"name": name}
    return reason or f"{name} could not answer."


def _run_view(run: AgentRun) -> dict[str, Any]:
    name = get_adapter().agent_display_name(run.agent_id)
    return {
        "run": run,
        "run_id": str(run.run_id),
        "agent_name": name,
        "status_text": run_status_text(run, name),
        "partial_text": run.partial_text if run.status in RETRYABLE_STATUSES else "",
        "failed": run.status in RETRYABLE_STATUSES,
        "retry_url": run_url("retry", run) if run.status in RETRYABLE_STATUSES else "",
        "stop_url": run_url("stop", run) if run.status in STOPPABLE_STATUSES else "",
    }


@register.inclusion_tag("relaybridge/stream.html", takes_context=True)
def relaybridge_stream(context: Context, thread: Any, ws_path: str = "") -> dict[str, Any]:
    """The stream area of ``thread``'s page (once per page, anywhere on it)."""
    thread_key = get_adapter().thread_key(thread)
    states = [run_state(run) for run in _cached_runs(context, thread_key).runs]
    dom_id = f"relaybridge-{slugify(thread_key.replace('.', '-'))}"
    return {
        "thread_key": thread_key,
        "dom_id": dom_id,
        "json_id": f"{dom_id}-runs",
        "ws_path": ws_path or default_ws_path(thread),
        "retry_url": run_url_template("retry"),
        "stop_url": run_url_template("stop"),
        "runs": states,
    }


@register.inclusion_tag("relaybridge/runs.html", takes_context=True)
def relaybridge_runs(context: Context, comment: Any) -> dict[str, Any]:
    """The runs of ``comment`` that have not ended in a reply, with Retry/Stop forms."""
    thread_key = get_adapter().comment_thread_key(comment)
    runs = _cached_runs(context, thread_key).by_comment.get(str(comment.pk), [])
    return {
        "comment_id": str(comment.pk),
        "runs": [_run_view(run) for run in runs],
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("relaybridge/mention_hint.html")
def relaybridge_mention_hint(hint_id: str = "relaybridge-mention-hint") -> dict[str, Any]:
    """Which agents one can @mention (point the textarea's ``aria-describedby`` at it).

    With JavaScript, the same list drives the comment box's ``@`` autocomplete and a
    preview of the agents the comment will call.
    """
    return {
        "hint_id": hint_id,
        "agents_json_id": f"{hint_id}-agents",
        "agents": mentionable_agents(),
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
    """An agent's Markdown as sanitized HTML (the allow-list makes it safe to mark so)."""
    return mark_safe(render_agent_markdown(str(text or "")))  # sanitized by nh3 just above


@register.filter
def relaybridge_agent_name(agent_id: Any) -> str:
    return get_adapter().agent_display_name(str(agent_id))
