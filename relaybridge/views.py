"""The Retry and Stop buttons, and the comment box's "will call" preview.

Retry and Stop are POSTs that change a run for everyone watching its thread.

Both are login-required, CSRF-protected (Django's middleware) and checked with the
adapter's ``can_view`` on the run's thread, then its ``can_control`` on the run
(by default: only the person who asked, staff, and holders of
``relaybridge.control_agentrun``). An unknown run id is a 404, a refused user a
403, a run in the wrong state a 409. The run records who pressed which and when
(``stopped_by``/``stopped_at``, ``retried_by``/``retried_at``). The new status is
pushed to the thread's group, so every tab on every Daphne process sees it.

A fetch sending ``Accept: application/json`` gets JSON: ``ok``, ``status``, and
``run`` (the run's ``run.status`` message, so a page whose socket is down still
shows the change) or ``error`` and a translated ``message``; a plain
form POST is redirected back to the page it came from, so the buttons work
without JavaScript.

The mention preview answers, for a draft comment, which agents posting it would
call, and says so in a sentence for the page (``message``): the same parser and
limit as the ``post_save`` receiver, so the preview never promises a call that
will not happen. It is rate-limited per user (``RELAYBRIDGE_PREVIEW_RATE``, 429
with ``Retry-After`` beyond) and reads at most ``RELAYBRIDGE_PREVIEW_MAX_CHARS``
of the draft.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext, ngettext
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from . import follow_ups, services, streams
from .adapters import get_adapter
from .agents import known_agent_ids, mentionable_agents, name_with_id
from .conf import relay_settings
from .mentions import find_mentions
from .models import AgentRun
from .ratelimit import retry_after
from .services.admission import preview_refusals

#: What a button does to a permitted run for a user: an HTTP status and the JSON body.
Action = Callable[[AgentRun, Any], tuple[int, dict[str, Any]]]


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _answer(request: HttpRequest, status: int, body: dict[str, Any]) -> HttpResponse:
    if _wants_json(request) or status == 403:
        return JsonResponse(body, status=status)
    # A plain form: back to the page, which shows the run's state on reload.
    back = request.headers.get("Referer", "")
    safe = url_has_allowed_host_and_scheme(
        back, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return redirect(back if back and safe else "/")


def _guarded(request: HttpRequest, run_id: uuid.UUID, action: Action) -> HttpResponse:
    run = services.get_run(run_id)
    if run is None:
        raise Http404("No such run.")
    adapter = get_adapter()
    if not adapter.can_view(request.user, adapter.thread_for(run.comment)):
        message = gettext("You may not change the runs of this thread.")
        return _answer(request, 403, {"ok": False, "error": "forbidden", "message": message})
    if not adapter.can_control(request.user, run):
        # Retry sends the question again in the asker's name: it is theirs to press.
        message = gettext("Only the person who asked can stop or retry this run.")
        return _answer(request, 403, {"ok": False, "error": "forbidden", "message": message})
    status, body = action(run, request.user)
    return _answer(request, status, body)


def _conflict(run: AgentRun, error: str, message: str) -> tuple[int, dict[str, Any]]:
    return 409, {"ok": False, "error": error, "status": run.status, "message": message}


def _retry(run: AgentRun, user: Any) -> tuple[int, dict[str, Any]]:
    run_id = str(run.run_id)
    if not services.retry_run(run_id, by=user):
        message = gettext("This run cannot be retried now.")
        return 409, {
            "ok": False,
            "error": "not retryable",
            "status": run.status,
            "message": message,
        }
    # The old attempt's text must not hold back the new stream's sequence numbers.
    services.clear_stream(run_id)
    run.refresh_from_db()
    services.push_status(run)
    # Sent to the one who pressed, who may: the run with its buttons.
    event = streams.status_event(run, controls=True)
    return 200, {"ok": True, "status": run.status, "run": event}


def _stop(run: AgentRun, user: Any) -> tuple[int, dict[str, Any]]:
    run_id = str(run.run_id)
    text, seq = services.read_stream(run_id)
    # A run stopped while waiting for a retry has no stream, only its earlier text.
    partial = text or run.partial_text
    if not services.mark_stopped(run_id, partial, by=user):
        return _conflict(run, "already finished", gettext("This run has already finished."))
    run.refresh_from_db()
    # From this push on, the pages drop the run's tokens (Relay cannot cancel).
    services.push_status(run, partial, seq)
    # A token buffered since the read above may have reached a page before that
    # push, and pages never show less: it stays with the run (one more push). Any
    # later token reaches the pages after the push, and is dropped.
    settled, later = services.settle_stopped_text(run_id, partial, seq)
    if settled != partial:
        run.refresh_from_db()
        services.push_status(run, settled, later)
    services.clear_stream(run_id)
    event = streams.status_event(run, settled, later, controls=True)
    return 200, {"ok": True, "status": run.status, "text": event["text"], "run": event}


@require_POST
@csrf_protect
@login_required
def retry_run(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Retry a failed or stopped run: the same run is queued and dispatched again."""
    return _guarded(request, run_id, _retry)


@require_POST
@csrf_protect
@login_required
def stop_run(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Stop an unfinished run, keeping the text streamed so far."""
    return _guarded(request, run_id, _stop)


@require_POST
@csrf_protect
@login_required
def mention_preview(request: HttpRequest) -> JsonResponse:
    """The agents a draft comment (``text``) would call, in order, and whether it names more.

    At most ``RELAYBRIDGE_PREVIEW_RATE`` requests per user (else 429 with
    ``Retry-After``), and only the first ``RELAYBRIDGE_PREVIEW_MAX_CHARS`` of the
    text are read (``truncated`` says so): the page asks as one types.
    """
    wait = retry_after("mention-preview", request.user, relay_settings.PREVIEW_RATE)
    if wait is not None:
        message = gettext("Too many previews. Try again in a moment.")
        response = JsonResponse(
            {"ok": False, "error": "rate limited", "message": message, "retry_after": wait},
            status=429,
        )
        response["Retry-After"] = str(wait)
        return response
    limit = relay_settings.MAX_MENTIONS
    text = request.POST.get("text", "")
    scanned = text[: relay_settings.PREVIEW_MAX_CHARS]
    # One past the limit tells the page that some mentions will not be called.
    agent_ids = find_mentions(scanned, known_agent_ids(), limit + 1)
    infos = {info["agent_id"]: info for info in mentionable_agents()}
    called = agent_ids[:limit]
    refused = admission_preview(request, called)
    agents = [
        {
            "agent_id": agent_id,
            "name": infos[agent_id]["name"] if agent_id in infos else agent_id,
            "unavailable": bool(infos[agent_id]["unavailable"]) if agent_id in infos else False,
        }
        for agent_id in called
    ]
    for agent in agents:
        # Only for the agents posting would refuse: "not_permitted" and the reason.
        kind_reason = refused.get(str(agent["agent_id"]))
        if kind_reason is not None:
            agent["not_permitted"] = kind_reason[0] == "not_permitted"
            agent["refused"] = kind_reason[1]
    over_limit = len(agent_ids) > limit
    # No mention: the comment may still go on to the agent that just answered.
    follow_up = (
        None
        if agent_ids
        else follow_ups.preview_for_value(request.user, request.POST.get("thread", ""))
    )
    return JsonResponse(
        {
            "agents": agents,
            "limit": limit,
            "over_limit": over_limit,
            "truncated": len(scanned) < len(text),
            "message": follow_up["message"]
            if follow_up
            else _preview_message(agents, limit, over_limit),
            "follow_up": follow_up,
        }
    )


def admission_preview(request: HttpRequest, agent_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Which of ``agent_ids`` posting would refuse: ``{agent: (kind, sentence)}``.

    The thread is the one the comment box posts to (``thread``: its key), when the
    page says so and the user may watch it; without it, the person's global
    permissions and their own quotas are checked.
    """
    if not agent_ids:
        return {}
    adapter = get_adapter()
    thread = None
    key = request.POST.get("thread", "")[:200]
    if key:
        found = adapter.thread_by_key(key)
        if found is not None and adapter.can_view(request.user, found):
            thread = found
    return preview_refusals(adapter, request.user, agent_ids, thread)


def _join_names(names: list[str]) -> str:
    if len(names) < 2:
        return "".join(names)
    return gettext("%(names)s and %(last)s") % {"names": ", ".join(names[:-1]), "last": names[-1]}


def _preview_message(agents: list[dict[str, Any]], limit: int, over_limit: bool) -> str:
    """What the page says under the comment box ("Posting will call Athena.")."""
    if not agents:
        return ""
    names = []
    for agent in agents:
        name = name_with_id(agent["name"], agent["agent_id"])
        if agent.get("not_permitted"):
            name = gettext("%(name)s (not available to you)") % {"name": name}
        elif agent["unavailable"]:
            name = gettext("%(name)s (unavailable)") % {"name": name}
        names.append(name)
    message = gettext("Posting will call %(agents)s.") % {"agents": _join_names(names)}
    # What admission will refuse, in its own words ("Athena's limit for you is reached …").
    for agent in agents:
        if agent.get("refused") and not agent.get("not_permitted"):
            message += " " + agent["refused"]
    if over_limit:
        message += " " + ngettext(
            "Only the first mentioned agent is called.",
            "Only the first %(limit)s mentioned agents are called.",
            limit,
        ) % {"limit": limit}
    return message
