"""Template tags for the actions under an agent's reply and the comment box's follow-ups.

They are part of ``{% load relaybridge %}`` too; this library can also be loaded
on its own (``{% load relaybridge_replies %}``):

* ``{% relaybridge_reply_actions comment %}`` -- under an agent's reply (``reply.html``
  includes it): "Reply to Athena" and the thumbs up / down votes with their counts.
* ``{% relaybridge_reply_prefill %}`` -- inside the comment box's ``<textarea>``:
  ``@athena `` when the page was opened from "Reply to Athena" (``?reply_to=athena``).
* ``{% relaybridge_follow_up thread %}`` -- inside the comment form: says when a
  comment without a mention will continue the conversation with the agent that
  just answered (``RELAYBRIDGE_FOLLOW_UP_WINDOW``), with the box to opt out of it.
"""

from __future__ import annotations

from typing import Any

from django import template
from django.template.context import Context

from .. import follow_ups
from ..reply_actions import DEFAULT_FORM_ID, reply_actions_context, reply_prefill

register = template.Library()


@register.inclusion_tag("relaybridge/reply_actions.html", takes_context=True)
def relaybridge_reply_actions(
    context: Context, comment: Any, form_id: str = DEFAULT_FORM_ID
) -> dict[str, Any]:
    """ "Reply to <agent>" (to ``#form_id``) and the votes under an agent's reply."""
    return reply_actions_context(context, comment, form_id)


@register.simple_tag(takes_context=True)
def relaybridge_reply_prefill(context: Context) -> str:
    """``@agent `` for a comment box opened from "Reply to <agent>", else nothing."""
    request = getattr(context, "request", None) or context.get("request")
    return reply_prefill(request)


@register.inclusion_tag("relaybridge/follow_up.html", takes_context=True)
def relaybridge_follow_up(context: Context, thread: Any) -> dict[str, Any]:
    """The follow-up notice and opt-out of ``thread``'s comment form."""
    request = getattr(context, "request", None) or context.get("request")
    return follow_ups.notice_context(thread, getattr(request, "user", None))
