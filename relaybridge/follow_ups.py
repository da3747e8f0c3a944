"""Follow-ups without a mention: the asker's next comment goes on to the agent that answered.

Opt-in with ``RELAYBRIDGE_FOLLOW_UP_WINDOW`` (seconds; None or 0: off). A comment
is a follow-up when all of these hold:

* it is new, written by a person (never an agent's reply), and mentions no agent;
* the thread's latest agent reply answered a run that this same person asked for
  (``AgentRun.requested_by``) -- a second person's comment is not a follow-up;
* it is saved within the window after that reply (``finished_at``), edges included;
* the agent is still one a comment may mention;
* the person did not opt out for this comment.

Then relaybridge sends ``comment_mention`` for that agent with
``chosen_by="follow-up"``, and the run continues the same Relay ``thread_id``, so
the agent keeps the conversation's context.

**Opting out.** The comment box offers a checkbox, ``relaybridge_no_follow_up``
(``{% relaybridge_follow_up thread %}``). The ``post_save`` receiver does not see
the request, so the form field reaches it as a mark on the comment or on the
request's context:

* django-contrib-comments: relaybridge reads the field itself from the request
  django_comments hands to its ``comment_will_be_posted`` signal;
* a host's own view calls :func:`opt_out_from_request` (``request``, ``comment``)
  before ``comment.save()`` -- or sets ``comment.relaybridge_no_follow_up = True``;
* code that saves comments outside a request (an import) wraps it in
  ``with no_follow_ups():``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, Final

from django.utils import timezone
from django.utils.formats import time_format
from django.utils.timezone import localtime
from django.utils.translation import gettext

from .adapters import get_adapter
from .agents import known_agent_ids, name_with_id
from .conf import relay_settings
from .models import AgentRun

#: The form field (a checkbox) that opts a comment out of being a follow-up.
NO_FOLLOW_UP_FIELD: Final = "relaybridge_no_follow_up"
#: The attribute on a comment instance that says the same to the receiver.
NO_FOLLOW_UP_MARK: Final = "relaybridge_no_follow_up"
#: How the agents of a ``comment_mention`` were chosen.
MENTIONED: Final = "mentioned"
FOLLOW_UP: Final = "follow-up"

_suppressed: ContextVar[bool] = ContextVar("relaybridge_no_follow_ups", default=False)


@contextlib.contextmanager
def no_follow_ups() -> Iterator[None]:
    """No comment saved inside this block is a follow-up."""
    token = _suppressed.set(True)
    try:
        yield
    finally:
        _suppressed.reset(token)


def opted_out_in(data: Any) -> bool:
    """Does the submitted form data (``request.POST``) opt out of a follow-up?"""
    value = str(data.get(NO_FOLLOW_UP_FIELD, "") or "").strip().lower()
    return value not in ("", "0", "false", "off", "no")


def opt_out_from_request(request: Any, comment: Any) -> None:
    """Mark ``comment`` (before it is saved) when its form opted out of a follow-up."""
    if opted_out_in(getattr(request, "POST", {})):
        setattr(comment, NO_FOLLOW_UP_MARK, True)


def opted_out(comment: Any) -> bool:
    return _suppressed.get() or bool(getattr(comment, NO_FOLLOW_UP_MARK, False))


def latest_reply(thread_key: str) -> AgentRun | None:
    """The run of the thread's latest agent reply (one indexed query)."""
    return (
        AgentRun.objects.filter(
            thread_key=thread_key,
            status=AgentRun.Status.REPLIED,
            finished_at__isnull=False,
        )
        .order_by("-finished_at", "-id")
        .first()
    )


def pending_follow_up(thread_key: str, user: Any, now: datetime | None = None) -> AgentRun | None:
    """The run a comment by ``user`` without a mention would follow up now, or None."""
    window = relay_settings.FOLLOW_UP_WINDOW
    user_pk = getattr(user, "pk", None)
    if window <= 0 or user_pk is None or not getattr(user, "is_authenticated", True):
        return None
    run = latest_reply(thread_key)
    if run is None or run.requested_by_id != user_pk or run.finished_at is None:
        return None
    now = now or timezone.now()
    if now - run.finished_at > timedelta(seconds=window):
        return None
    known = {agent_id.lower() for agent_id in known_agent_ids()}
    return run if run.agent_id.lower() in known else None


def follow_up_agents(comment: Any, requested_by: Any, *, created: bool) -> list[str]:
    """The agent a new comment without a mention follows up (``[agent_id]``), or ``[]``.

    The caller has found no mention and knows a person wrote the comment.
    """
    if not created or relay_settings.FOLLOW_UP_WINDOW <= 0 or opted_out(comment):
        return []
    adapter = get_adapter()
    if not adapter.text(comment).strip():
        return []  # e.g. a comment held for moderation: it asks nothing yet
    run = pending_follow_up(adapter.comment_thread_key(comment), requested_by)
    return [run.agent_id] if run is not None else []


def _agent_label(run: AgentRun) -> str:
    return name_with_id(get_adapter().agent_display_name(run.agent_id), run.agent_id)


def until(run: AgentRun) -> datetime:
    assert run.finished_at is not None
    return run.finished_at + timedelta(seconds=relay_settings.FOLLOW_UP_WINDOW)


def preview(thread_key: str, user: Any) -> dict[str, Any] | None:
    """The preview's ``follow_up``: who a comment without a mention goes to, or None."""
    run = pending_follow_up(thread_key, user)
    if run is None:
        return None
    name = _agent_label(run)
    return {
        "agent_id": run.agent_id,
        "name": name,
        "until": until(run).isoformat(),
        "message": gettext("Posting will continue with %(agent)s.") % {"agent": name},
        "opt_out": gettext("Post without asking %(agent)s") % {"agent": name},
    }


def preview_for_value(user: Any, thread_key: str) -> dict[str, Any] | None:
    """:func:`preview` for a thread key a page sent, if ``user`` may view that thread."""
    if relay_settings.FOLLOW_UP_WINDOW <= 0 or not thread_key or len(thread_key) > 200:
        return None
    adapter = get_adapter()
    thread = adapter.thread_by_key(thread_key)
    if thread is None or not adapter.can_view(user, thread):
        return None
    return preview(adapter.thread_key(thread), user)


def notice_context(thread: Any, user: Any) -> dict[str, Any]:
    """The context of ``relaybridge/follow_up.html`` (``{% relaybridge_follow_up %}``)."""
    enabled = relay_settings.FOLLOW_UP_WINDOW > 0
    thread_key = get_adapter().thread_key(thread) if enabled else ""
    run = pending_follow_up(thread_key, user) if enabled else None
    message = opt_out = ""
    if run is not None:
        name = _agent_label(run)
        message = gettext(
            "A comment without a mention continues with %(agent)s until %(time)s."
        ) % {"agent": name, "time": time_format(localtime(until(run)))}
        opt_out = gettext("Post without asking %(agent)s") % {"agent": name}
    return {
        "enabled": enabled,
        "thread_key": thread_key,
        "field": NO_FOLLOW_UP_FIELD,
        "pending": run is not None,
        "message": message,
        "opt_out": opt_out,
    }


def comment_will_be_posted(sender: Any, comment: Any, request: Any, **kwargs: Any) -> bool:
    """django_comments' signal: carry the form's opt-out to the comment being saved."""
    opt_out_from_request(request, comment)
    return True
