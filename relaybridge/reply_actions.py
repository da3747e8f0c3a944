"""What a page shows under an agent's reply: "Reply to Athena", and the votes on it.

``{% relaybridge_reply_actions comment %}`` renders ``relaybridge/reply_actions.html``
for an agent's reply comment:

* **Reply to Athena** -- a link to ``?reply_to=athena#comment-form``. Without
  JavaScript it reloads the page with the comment box pre-filled with ``@athena ``
  (``{% relaybridge_reply_prefill %}`` inside a hand-written ``<textarea>``, or
  :func:`reply_prefill` as the form's initial value); with it, the page script puts
  the mention into the box and moves the focus there, without a reload.
* **Feedback** -- thumbs up / thumbs down buttons with the counts and an optional
  short note, one plain POST form (:mod:`relaybridge.feedback`).

The votes of a page's replies cost one query per thread for their counts (the runs
come with the page's query for the thread's runs, :mod:`relaybridge.page_cache`),
and one for the viewer's own votes once any has votes, however many replies it shows.
"""

from __future__ import annotations

from typing import Any, Final

from django.http import HttpRequest
from django.template.context import Context
from django.urls import NoReverseMatch, reverse

from .adapters import get_adapter
from .agents import known_agent_ids
from .feedback import counts, votes_of
from .fragments import GIVEN_REPLY_RUN
from .mentions import is_valid_agent_id
from .models import FEEDBACK_NOTE_MAX_CHARS, AgentRun
from .page_cache import context_request, page_dict, page_values, replied_by_reply, thread_runs

#: The query parameter the Reply link sets, and the comment form's default id.
REPLY_TO_PARAM: Final = "reply_to"
DEFAULT_FORM_ID: Final = "comment-form"
_ZERO_UUID: Final = "00000000-0000-0000-0000-000000000000"
_CACHE_KEY: Final = "relaybridge.reply_runs"


def feedback_url(run: AgentRun) -> str:
    """The URL a vote on ``run``'s reply is posted to."""
    try:
        url = reverse("relaybridge:reply-feedback", kwargs={"run_id": _ZERO_UUID})
    except NoReverseMatch:
        url = f"/relaybridge/runs/{_ZERO_UUID}/feedback/"
    return url.replace(_ZERO_UUID, str(run.run_id))


def reply_prefill(request: HttpRequest | None) -> str:
    """``"@athena "`` when the page was opened from "Reply to Athena", else ``""``.

    Only an agent one may mention is put in the box: the parameter is untrusted.
    """
    if request is None:
        return ""
    wanted = str(request.GET.get(REPLY_TO_PARAM, "")).strip()
    if not wanted or not is_valid_agent_id(wanted):
        return ""
    for agent_id in known_agent_ids():
        if agent_id.lower() == wanted.lower():
            return f"@{agent_id} "
    return ""


class _ThreadReplies:
    """One thread's replied runs, by reply comment, with their vote counts."""

    def __init__(self, by_reply: dict[str, AgentRun], *, counted: bool = True) -> None:
        """``counted=False``: the replies were just saved, and no page has shown them
        yet, so nobody can have voted (no query for their votes)."""
        self.by_reply = by_reply
        replied = list(by_reply.values())
        self.counts = counts([run.pk for run in replied]) if replied and counted else {}
        self.mine: dict[int, str] | None = None

    def votes_of(self, user: Any) -> dict[int, str]:
        if self.mine is None:
            self.mine = votes_of(user, list(self.counts))  # only runs with votes
        return self.mine


def _thread_replies(context: Context, thread_key: str) -> _ThreadReplies:
    cache = page_dict(context, _CACHE_KEY)
    if thread_key not in cache:
        # From the page's one query for the thread's runs.
        cache[thread_key] = _ThreadReplies(thread_runs(context, thread_key).replied)
    found: _ThreadReplies = cache[thread_key]
    return found


def _given_reply(context: Context, comment: Any) -> _ThreadReplies | None:
    """The reply's own run, when the renderer gave it (:data:`GIVEN_REPLY_RUN`)."""
    given = context.get(GIVEN_REPLY_RUN)
    if given is None or given[0] != str(comment.pk):
        return None
    _comment_id, run, just_saved = given
    return _ThreadReplies(replied_by_reply([run]), counted=not just_saved)


def reply_actions_context(
    context: Context, comment: Any, form_id: str = DEFAULT_FORM_ID
) -> dict[str, Any]:
    """The context of ``relaybridge/reply_actions.html`` for an agent's reply ``comment``."""
    with page_values(context):
        return _reply_actions(context, comment, form_id)


def _reply_actions(context: Context, comment: Any, form_id: str) -> dict[str, Any]:
    adapter = get_adapter()
    agent_id = adapter.is_agent_comment(comment) or getattr(comment, "relaybridge_agent_id", "")
    replies = _given_reply(context, comment) or _thread_replies(
        context, adapter.comment_thread_key(comment)
    )
    run = replies.by_reply.get(str(comment.pk))
    if not agent_id and run is not None:
        agent_id = run.agent_id
    if not agent_id:
        return {"show": False}
    up, down = replies.counts.get(run.pk, (0, 0)) if run is not None else (0, 0)
    request = context_request(context)
    user = getattr(request, "user", None)
    mine = replies.votes_of(user).get(run.pk, "") if run is not None else ""
    return {
        "show": True,
        "comment_id": str(comment.pk),
        "agent_id": agent_id,
        "agent_name": adapter.agent_display_name(agent_id),
        "reply_href": f"?{REPLY_TO_PARAM}={agent_id}#{form_id}",
        "run_id": str(run.run_id) if run is not None else "",
        "feedback_url": feedback_url(run) if run is not None else "",
        "up": up,
        "down": down,
        "mine": mine,
        "note_max": FEEDBACK_NOTE_MAX_CHARS,
        "csrf_token": context.get("csrf_token"),
    }
