"""Template tags for hosts on django-contrib-comments (``DjangoCommentsAdapter``).

``{% load relaybridge_comments %}`` and then, after django_comments'
``{% get_comment_list for card as comment_list %}``:

* ``{% relaybridge_agent_authors comment_list %}`` -- marks the comments agents
  wrote (one query for the whole list): ``comment.relaybridge_agent_id`` is then
  the agent's id on those and empty on the others, e.g. to render an agent's
  Markdown with ``relaybridge_markdown`` and label it as AI-generated.
"""

from __future__ import annotations

from typing import Any

from django import template

from ..adapters import get_adapter
from ..contrib.django_comments import DjangoCommentsAdapter

register = template.Library()


@register.simple_tag
def relaybridge_agent_authors(comments: Any) -> str:
    adapter = get_adapter()
    if not isinstance(adapter, DjangoCommentsAdapter):
        raise template.TemplateSyntaxError(
            "relaybridge_agent_authors needs RELAYBRIDGE_ADAPTER to be a DjangoCommentsAdapter"
        )
    adapter.mark_agent_comments(comments)
    return ""
