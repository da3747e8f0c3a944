"""The page's markup of runs and replies, rendered on the server (the page contract).

Two templates a host may override make everything the page shows of relaybridge
below its comments:

* ``relaybridge/run.html`` -- one run that has not ended in a reply: its status
  line, the streamed text, Retry/Stop forms. ``{% relaybridge_runs comment %}``
  loops over it, and every ``snapshot``/``run.status`` message carries it as
  ``html``, so the script never writes markup of its own. The forms are there
  only for a viewer the adapter's ``can_control`` allows: ``retry_url`` and
  ``stop_url`` are empty for everyone else.
* ``relaybridge/reply.html`` -- an agent's reply comment: what ``run.reply`` carries
  as ``fragment`` and what ``{% relaybridge_reply comment %}`` renders in the page's
  comment list, from one context builder, so the two can never differ.

Fragments pushed to a thread's group are rendered once for every page watching it:
without a request, a CSRF token (the script fills it in) or the viewer's language
(they use the server's active language, ``LANGUAGE_CODE`` in the relay worker).
Status lines are worked out here only; the script shows them as they come.
"""

from __future__ import annotations

import math
import re
from typing import Any, Final

from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.safestring import mark_safe
from django.utils.translation import gettext

from .adapters import get_adapter
from .conf import relay_settings
from .models import ACTIVE_STATUSES, AgentRun
from .page_memo import remembered
from .protocol.codes import ErrorCode
from .protocol.policy import describe_error, policy_for
from .questions import FINAL_STOP_CODES
from .rendered import reply_html

Status = AgentRun.Status

RUN_TEMPLATE: Final = "relaybridge/run.html"
REPLY_TEMPLATE: Final = "relaybridge/reply.html"
#: Runs a page shows: those still going, and those that ended without a reply.
VISIBLE_STATUSES: Final = frozenset(
    {*ACTIVE_STATUSES, Status.FAILED, Status.STOPPED, Status.REFUSED}
)
#: Which runs get which button (the endpoints check again; this is only the offer).
RETRYABLE_STATUSES: Final = frozenset({Status.FAILED, Status.STOPPED})
STOPPABLE_STATUSES: Final = frozenset({Status.ACCEPTED, Status.STREAMING})
THINKING_STATUSES: Final = frozenset({Status.QUEUED, Status.SENDING, Status.ACCEPTED})
#: The token in the URL templates the script replaces with a run id.
RUN_TOKEN: Final = "{run}"
#: A context variable with ``(comment id, run views)``: ``{% relaybridge_runs %}`` of
#: that comment shows those runs instead of looking them up.
GIVEN_RUNS: Final = "relaybridge_given_runs"
#: A context variable with ``(reply comment id, its run, just saved)``: the reply's
#: actions take that run instead of looking up the runs of the reply's whole thread;
#: a reply just saved has no votes to count yet.
GIVEN_REPLY_RUN: Final = "relaybridge_given_reply_run"
#: Where a status template puts the live countdown (the script fills it in).
COUNTDOWN: Final = "{countdown}"
_ZERO_UUID: Final = "00000000-0000-0000-0000-000000000000"
# The relay worker's messages may end with their own "— retrying in 4 s"; the
# status line says when, counting down.
_RETRY_SUFFIX: Final = re.compile(r"\s*—\s*retrying\b.*$", re.S)


def run_url_template(action: str) -> str:
    """The URL of a run's ``retry``/``stop`` endpoint with ``{run}`` for its id.

    Reversed from ``relaybridge:<action>-run`` when the host includes
    ``relaybridge.urls``; otherwise the documented default path. Reversed once per
    page while the tags draw one (each run has two URLs).
    """
    return remembered(f"run_url_template:{action}", lambda: _run_url_template(action))


def _run_url_template(action: str) -> str:
    try:
        url = reverse(f"relaybridge:{action}-run", kwargs={"run_id": _ZERO_UUID})
    except NoReverseMatch:
        return f"/relaybridge/runs/{RUN_TOKEN}/{action}/"
    return url.replace(_ZERO_UUID, RUN_TOKEN)


def run_url(action: str, run: AgentRun) -> str:
    return run_url_template(action).replace(RUN_TOKEN, str(run.run_id))


def retry_in(run: AgentRun) -> float | None:
    """Seconds until a retrying run is sent again (None for any other run)."""
    if run.status != Status.RETRYING or run.next_attempt_at is None:
        return None
    return max(0.0, round((run.next_attempt_at - timezone.now()).total_seconds(), 1))


def format_delay(seconds: float) -> str:
    """A delay for people, rounded up: ``4 s``, ``2 min``, ``1 min 30 s``."""
    if not math.isfinite(seconds):
        return gettext("a while")
    total = max(0, math.ceil(seconds))
    minutes, secs = divmod(total, 60)
    if not minutes:
        return gettext("%(seconds)s s") % {"seconds": secs}
    if not secs:
        return gettext("%(minutes)s min") % {"minutes": minutes}
    return gettext("%(minutes)s min %(seconds)s s") % {"minutes": minutes, "seconds": secs}


def countdown_text(wait: float | None) -> str:
    if wait is None:
        return gettext("retrying soon")
    if wait <= 0.5:
        return gettext("retrying now…")
    return gettext("retrying in %(delay)s") % {"delay": format_delay(wait)}


def page_texts() -> dict[str, str]:
    """The script's own words, translated here: the stream area carries them as JSON."""
    return {
        "seconds": gettext("%(seconds)s s") % {"seconds": "{s}"},
        "minutes": gettext("%(minutes)s min") % {"minutes": "{m}"},
        "minutes_seconds": gettext("%(minutes)s min %(seconds)s s")
        % {"minutes": "{m}", "seconds": "{s}"},
        "retrying_in": gettext("retrying in %(delay)s") % {"delay": "{delay}"},
        "retrying_now": gettext("retrying now…"),
        "retrying_soon": gettext("retrying soon"),
        "action_failed": gettext("That did not work. Reload the page and try again."),
        "unreachable": gettext("Could not reach the server."),
    }


def error_text(code: str, name: str) -> str:
    """The reason for error ``code`` in the active language ("Athena is offline")."""
    policy = policy_for(code)
    try:
        message = gettext(policy.message).format(agent=name, code=policy.code)
    except (KeyError, IndexError, ValueError):
        # A translation with broken placeholders: the English one still works.
        message = policy.message.format(agent=name, code=policy.code)
    return message[:1].upper() + message[1:]


def _reason(run: AgentRun, name: str) -> str:
    reason = _RETRY_SUFFIX.sub("", run.error_message or "")
    if run.error_code and (not reason or reason == describe_error(run.error_code, agent=name)):
        # The worker recorded the policy's own message (in English): say it in the
        # page's language. Any other message is shown as it was recorded.
        return error_text(run.error_code, name)
    return reason


def writing_text(name: str) -> str:
    return gettext("%(agent)s is writing…") % {"agent": name}


def replied_text(name: str) -> str:
    return gettext("%(agent)s replied.") % {"agent": name}


def status_template(run: AgentRun, name: str) -> str:
    """A retrying run's status line with ``{countdown}`` where the wait goes, else ``""``."""
    if run.status != Status.RETRYING:
        return ""
    if run.error_code == ErrorCode.CONNECTION_LOST:
        # Asked again at once: no wait to count down.
        return gettext("Connection to Relay was lost — asking %(agent)s again") % {"agent": name}
    reason = _reason(run, name) or gettext("%(agent)s is unavailable") % {"agent": name}
    return gettext("%(reason)s — %(countdown)s") % {"reason": reason, "countdown": COUNTDOWN}


def run_status_text(run: AgentRun, name: str) -> str:
    """What a person reads about a run: the status line, worked out on the server only."""
    if run.status in THINKING_STATUSES:
        return gettext("%(agent)s is thinking…") % {"agent": name}
    if run.status == Status.STREAMING:
        return writing_text(name)
    if run.status == Status.REPLIED:
        return replied_text(name)
    if run.status == Status.RETRYING:
        return status_template(run, name).replace(COUNTDOWN, countdown_text(retry_in(run)))
    reason = _reason(run, name)
    if run.status == Status.STOPPED:
        if reason:
            return gettext("%(agent)s was stopped: %(reason)s") % {"agent": name, "reason": reason}
        return gettext("%(agent)s was stopped.") % {"agent": name}
    if run.status == Status.REFUSED:
        # The reason is stored whole ("Not sent: too many agent replies …").
        return reason or gettext("Not sent: %(agent)s was not asked.") % {"agent": name}
    return reason or gettext("%(agent)s could not answer.") % {"agent": name}


def _retryable(run: AgentRun) -> bool:
    # Not a run whose question was edited (a later revision asks it) or deleted.
    return (
        run.status in RETRYABLE_STATUSES
        and run.error_code not in FINAL_STOP_CODES
        and run.comment_id is not None
    )


def has_controls(run: AgentRun) -> bool:
    """Does ``run.html`` offer a button (Retry or Stop) for ``run`` in its status?"""
    return run.status in RETRYABLE_STATUSES or run.status in STOPPABLE_STATUSES


def run_view(
    run: AgentRun, text: str = "", *, with_text: bool = True, controls: bool = False
) -> dict[str, Any]:
    """The context of ``relaybridge/run.html`` for one run (as ``item``).

    ``with_text=False``: without the run's text (a stream message carries it apart).
    ``controls``: the viewer may press Stop and Retry (the adapter's
    ``can_control``); without it the view has no ``retry_url``/``stop_url``.
    """
    name = get_adapter().agent_display_name(run.agent_id)
    if not with_text:
        text = ""
    elif run.status in RETRYABLE_STATUSES and not text:
        text = run.partial_text
    return {
        "run": run,
        "run_id": str(run.run_id),
        "status": run.status,
        "comment_id": str(run.comment_id),
        "agent_id": run.agent_id,
        "agent_name": name,
        "status_text": run_status_text(run, name),
        "partial_text": text,
        "failed": run.status in RETRYABLE_STATUSES,
        "can_control": controls,
        "retry_url": run_url("retry", run) if controls and _retryable(run) else "",
        "stop_url": run_url("stop", run) if controls and run.status in STOPPABLE_STATUSES else "",
    }


def render_run(run: AgentRun, controls: bool = False) -> str:
    """``relaybridge/run.html`` for one run, as a stream message carries it: without
    its text, which the message carries once, apart (the script puts it in)."""
    return render_to_string(
        RUN_TEMPLATE, {"item": run_view(run, with_text=False, controls=controls)}
    )


def reply_context(
    comment: Any,
    *,
    live: bool = False,
    body_html: str | None = None,
    revisions: Any = None,
    run: AgentRun | None = None,
) -> dict[str, Any]:
    """The context of ``relaybridge/reply.html`` for an agent's reply ``comment``.

    ``live``: rendered for a stream message, so the comment's runs (there are none
    yet) are not looked up; they arrive on the stream like any other run.
    ``body_html``: the reply's sanitized HTML when the caller has it; else its
    stored copy (:func:`relaybridge.rendered.reply_html`). ``revisions``: the page's
    :class:`relaybridge.revisions.ThreadRevisions` (else one query for the
    reply's Regenerate button and label). ``run``: the run that saved the reply,
    when the caller has it: its buttons, label and votes then come from that run,
    not from the runs of the whole thread (which a live reply would otherwise load
    for every reply saved, however long the thread). A ``live`` reply is rendered in
    the same trip that saved it, before any page has shown it: its votes are not
    counted, there are none yet.
    """
    from .revisions import ThreadRevisions, reply_revision

    if run is not None and revisions is None:
        revisions = ThreadRevisions(run.thread_key, [run])

    if body_html is None:
        body_html = reply_html(comment)
    adapter = get_adapter()
    agent_id = adapter.is_agent_comment(comment) or ""
    created_field = relay_settings.CREATED_FIELD
    return {
        "comment": comment,
        "comment_id": str(comment.pk),
        "agent_id": agent_id,
        "agent_name": adapter.agent_display_name(agent_id) if agent_id else "",
        # Sanitized with the allow-list when it was rendered, so safe to mark so.
        "body_html": mark_safe(body_html),
        "created": getattr(comment, created_field, None) if created_field else None,
        **({GIVEN_RUNS: (str(comment.pk), [])} if live else {}),
        **({GIVEN_REPLY_RUN: (str(comment.pk), run, live)} if run is not None else {}),
        # "Regenerate" (``regenerate_url``) and "Regenerated answer" (``regenerated``).
        **reply_revision(comment, revisions),
    }


def render_reply(comment: Any, body_html: str | None = None, run: AgentRun | None = None) -> str:
    """``relaybridge/reply.html`` for ``comment``, as ``run.reply`` carries it;
    ``run``: the run that saved it (see :func:`reply_context`)."""
    context = reply_context(comment, live=True, body_html=body_html, run=run)
    return render_to_string(REPLY_TEMPLATE, context)
