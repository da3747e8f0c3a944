"""Thumbs up / thumbs down on an agent's reply: the votes, their counts, and the view.

A person who may view a thread votes on each agent reply in it: ``up`` or ``down``,
with an optional short note (at most :data:`~relaybridge.models.FEEDBACK_NOTE_MAX_CHARS`
characters). One vote per person and reply, changeable: voting again replaces the
vote (and the note). The vote is recorded on the reply's run in the ledger
(:class:`~relaybridge.models.ReplyFeedback`), the ``reply_feedback`` signal tells
the host, and every page watching the thread gets the new counts at once
(``reply.feedback``, below).

The vote travels to the pages once for everyone, so the group message names the
voter by primary key (``voter``) and the consumer turns that into ``mine`` for the
voter's own pages and leaves it out for everyone else's: nobody learns how another
person voted, only the counts.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any, Final, Literal, NotRequired, TypedDict

from asgiref.sync import async_to_sync
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.utils.translation import gettext
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from . import services, streams
from .adapters import get_adapter
from .models import FEEDBACK_NOTE_MAX_CHARS, AgentRun, ReplyFeedback
from .signals import reply_feedback
from .views import _answer

logger = logging.getLogger("relaybridge")

#: The browser message type, and its channel-layer type (``relaybridge_reply_feedback``).
REPLY_FEEDBACK: Final = "reply.feedback"
LAYER_TYPE: Final = "relaybridge.reply.feedback"
VOTES: Final = frozenset(ReplyFeedback.Vote.values)


class ReplyFeedbackMessage(TypedDict):
    """The counts of one reply's votes, for every page watching its thread."""

    type: Literal["reply.feedback"]
    run: str
    comment_id: str
    up: int
    down: int
    #: The page's own person's vote: only on the voter's pages ("up"/"down").
    mine: NotRequired[str]


def counts(run_ids: list[int]) -> dict[int, tuple[int, int]]:
    """``{run pk: (up, down)}`` for the runs with votes (one query)."""
    rows = (
        ReplyFeedback.objects.filter(run_id__in=run_ids)
        .values("run_id")
        .annotate(
            up=Count("id", filter=Q(vote=ReplyFeedback.Vote.UP)),
            down=Count("id", filter=Q(vote=ReplyFeedback.Vote.DOWN)),
        )
    )
    return {row["run_id"]: (row["up"], row["down"]) for row in rows}


def votes_of(user: Any, run_ids: list[int]) -> dict[int, str]:
    """``{run pk: vote}`` of ``user`` on those runs (one query; none for anonymous)."""
    if not run_ids or not getattr(user, "is_authenticated", False):
        return {}  # a page whose replies have no votes yet asks nothing
    rows = ReplyFeedback.objects.filter(run_id__in=run_ids, user=user).values_list("run_id", "vote")
    return dict(rows)


def record_vote(run: AgentRun, user: Any, vote: str, note: str = "") -> ReplyFeedback:
    """Save ``user``'s vote on ``run``'s reply (replacing an earlier one); tell the host.

    Two votes at once by the same person cannot make two rows: the unique
    constraint holds, and ``update_or_create`` retries the lookup after losing.
    """
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {sorted(VOTES)}")
    note = note.strip()[:FEEDBACK_NOTE_MAX_CHARS]
    with transaction.atomic():
        previous = (
            ReplyFeedback.objects.select_for_update()
            .filter(run=run, user=user)
            .values_list("vote", flat=True)
            .first()
        )
        feedback, _created = ReplyFeedback.objects.update_or_create(
            run=run, user=user, defaults={"vote": vote, "note": note}
        )

        def tell() -> None:
            reply_feedback.send(
                sender=ReplyFeedback,
                feedback=feedback,
                run=run,
                user=user,
                vote=vote,
                previous=previous,
                note=note,
            )
            push_counts(run, voter=user, vote=vote)

        transaction.on_commit(tell)
    return feedback


def feedback_event(run: AgentRun) -> ReplyFeedbackMessage:
    up, down = counts([run.pk]).get(run.pk, (0, 0))
    return {
        "type": REPLY_FEEDBACK,
        "run": str(run.run_id),
        "comment_id": str(run.reply_comment_id or ""),
        "up": up,
        "down": down,
    }


def push_counts(run: AgentRun, *, voter: Any = None, vote: str = "") -> None:
    """Send the run's counts to every page of its thread (the voter's get ``mine``)."""
    layer = streams.stream_layer()
    if layer is None:
        return
    message = {
        "type": LAYER_TYPE,
        "event": feedback_event(run),
        "voter": str(getattr(voter, "pk", "") or ""),
        "vote": vote,
    }
    try:
        async_to_sync(layer.group_send)(streams.group_name_for_thread(run.thread_key), message)
    except Exception:
        # The vote is saved; a page sees the counts on its next load.
        logger.exception("could not push the feedback of run %s", run.run_id)


def page_event(message: dict[str, Any], user: Any) -> ReplyFeedbackMessage:
    """The group message as one page gets it: ``mine`` only for the voter's pages."""
    event: ReplyFeedbackMessage = dict(message["event"])  # type: ignore[assignment]
    event.pop("mine", None)
    voter = str(message.get("voter") or "")
    if voter and voter == str(getattr(user, "pk", "") or "") and message.get("vote"):
        event["mine"] = str(message["vote"])
    return event


def _forbidden(request: HttpRequest) -> HttpResponse:
    message = gettext("You may not give feedback on this thread.")
    return _answer(request, 403, {"ok": False, "error": "forbidden", "message": message})


@require_POST
@csrf_protect
@login_required
def reply_feedback_view(request: HttpRequest, run_id: uuid.UUID) -> HttpResponse:
    """Vote ``up``/``down`` (POST ``vote``, optional ``note``) on a run's reply."""
    run = services.get_run(run_id)
    if run is None:
        raise Http404("No such run.")
    adapter = get_adapter()
    if not adapter.can_view(request.user, adapter.thread_for(run.comment)):
        return _forbidden(request)
    if run.status != AgentRun.Status.REPLIED or run.reply_comment_id is None:
        message = gettext("Only an agent's reply can be voted on.")
        return _answer(request, 409, {"ok": False, "error": "no reply", "message": message})
    vote = request.POST.get("vote", "")
    note = request.POST.get("note", "")
    if vote not in VOTES or len(note.strip()) > FEEDBACK_NOTE_MAX_CHARS:
        message = gettext("Vote up or down, with a note of at most %(count)s characters.") % {
            "count": FEEDBACK_NOTE_MAX_CHARS
        }
        return _answer(request, 400, {"ok": False, "error": "invalid", "message": message})
    record_vote(run, request.user, vote, note)
    event = feedback_event(run)
    return _answer(request, 200, {"ok": True, **event, "mine": vote})
