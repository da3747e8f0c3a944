"""Edits, deletes and Regenerate: the later revisions of a run, and runs whose question went.

A run is one agent asked by one comment, at one ``revision`` (1 for the mention
itself); the database keeps one run per (comment, agent, revision), so two
processes that both decide to ask again make one run between them.

* **An edit** (a save of the comment whose text no longer matches the latest run's
  ``question_digest``): a run still going is stopped (``RELAYBRIDGE_EDITED``) and
  the agent is asked again with the new text, as the next revision. After the run
  ended, nothing runs by itself: the page offers "Ask <agent> again with the edited
  text" (:func:`ask_again`).
* **A delete**: the comment's runs still going are stopped
  (``RELAYBRIDGE_COMMENT_DELETED``); the ledger keeps every run, its ``comment``
  set to NULL and the start of the question in ``question_excerpt``.
* **Regenerate** (on an agent's reply): the same question asked again as the next
  revision; the run records ``regenerates`` and its reply is labelled
  "Regenerated answer".

Who may press the buttons is :func:`may_control`, one function for all of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from . import services
from .adapters import get_adapter
from .conf import redact
from .models import ACTIVE_STATUSES, AgentRun
from .protocol.codes import ErrorCode
from .questions import FINAL_STOP_CODES, question_digest, question_fields

__all__ = ["FINAL_STOP_CODES", "may_control", "may_view_thread", "next_run", "stop_for"]

Status = AgentRun.Status

EDITED_CODE: Final = ErrorCode.EDITED.value
DELETED_CODE: Final = ErrorCode.COMMENT_DELETED.value


def may_view_thread(user: Any, run: AgentRun) -> bool:
    """``can_view`` on the run's thread, found by its key once the comment is gone."""
    adapter = get_adapter()
    if run.comment is not None:
        thread = adapter.thread_for(run.comment)
    else:
        thread = adapter.thread_by_key(run.thread_key)
    return thread is not None and adapter.can_view(user, thread)


def may_control(user: Any, run: AgentRun) -> bool:
    """May ``user`` press a button of ``run`` (Retry, Stop, Regenerate, Ask again)?

    One check for all of them: :func:`may_view_thread`, then the adapter's
    ``can_control`` on the run (by default the person who asked, staff and
    holders of ``relaybridge.control_agentrun``).
    """
    return may_view_thread(user, run) and get_adapter().can_control(user, run)


def latest_runs(comment: Any) -> dict[str, AgentRun]:
    """The latest revision of each agent's run on ``comment``, by agent id."""
    latest: dict[str, AgentRun] = {}
    for run in AgentRun.objects.filter(comment=comment).order_by("agent_id", "revision"):
        latest[run.agent_id] = run
    return latest


def _push_after_commit(run: AgentRun, text: str = "", seq: int = 0) -> None:
    transaction.on_commit(lambda: services.push_status(run, text, seq))


def stop_for(run: AgentRun, code: str) -> bool:
    """Stop ``run`` if it is still going, because its question changed or went (``code``).

    Like the Stop button, the text streamed so far is kept; every page watching the
    thread is told once the change is committed.
    """
    run_id = str(run.run_id)
    text, seq = services.read_stream(run_id)
    partial = text or run.partial_text
    now = timezone.now()
    stopped = AgentRun.objects.filter(run_id=run.run_id, status__in=ACTIVE_STATUSES).update(
        status=Status.STOPPED,
        error_code=code,
        error_message="",
        partial_text=redact(partial),
        next_attempt_at=None,
        finished_at=now,
        updated_at=now,
    )
    if not stopped:
        return False
    run.status, run.error_code, run.error_message = Status.STOPPED, code, ""
    run.partial_text, run.finished_at = redact(partial), now
    _push_after_commit(run, partial, seq)
    transaction.on_commit(lambda: services.clear_stream(run_id))
    return True


def next_run(
    previous: AgentRun, comment: Any, *, regenerates: AgentRun | None = None
) -> AgentRun | None:
    """Ask ``previous``'s agent again about ``comment``, queued.

    An edit supersedes ``previous`` itself: the new run is ``previous.revision + 1``,
    so two edits that both saw ``previous`` going make one run between them. A
    Regenerate (``regenerates``) may start from any earlier answer: the new run is
    the revision after the latest. None when that revision exists already: another
    request made it first (the unique constraint decides, on every database).
    """
    revision = previous.revision + 1
    if regenerates is not None:
        top = AgentRun.objects.filter(comment=comment, agent_id=previous.agent_id).aggregate(
            top=Max("revision")
        )["top"]
        revision = max(int(top or 0), previous.revision) + 1
    try:
        with transaction.atomic():
            run = AgentRun.objects.create(
                comment=comment,
                agent_id=previous.agent_id,
                revision=revision,
                regenerates=regenerates,
                thread_id=previous.thread_id,
                thread_key=previous.thread_key,
                requested_by=previous.requested_by,
                hop_depth=previous.hop_depth,
                **question_fields(comment),
            )
    except IntegrityError:
        return None
    services.queue_dispatch(run.run_id)
    _push_after_commit(run)
    return run


def _ask_again_after_edit(latest: AgentRun, comment: Any) -> AgentRun | None:
    """Stop ``latest`` (still going, asked the old text) and ask the next revision."""
    if not stop_for(latest, EDITED_CODE):
        # Stopped meanwhile by another edit of the same question (which asks again
        # itself, or loses to this one on the constraint), or it just ended: then
        # the page offers to ask again instead.
        row = AgentRun.objects.filter(pk=latest.pk).values("status", "error_code").first()
        if row is None or (row["status"], row["error_code"]) != (Status.STOPPED, EDITED_CODE):
            return None
    return next_run(latest, comment)


def comment_edited(comment: Any, mentioned: Iterable[str]) -> list[AgentRun]:
    """Called for every save of a comment that already has runs: act on an edit.

    Runs still going that asked an older text are stopped; the agents the comment
    still mentions (``mentioned``: after the hop rules) are asked again with the new
    text. Runs from before revisions (no digest) are left alone.
    """
    latest = latest_runs(comment)
    if not latest:
        return []
    digest = question_digest(get_adapter().text(comment))
    wanted = set(mentioned)
    created = []
    for agent_id, run in latest.items():
        if not run.question_digest or run.question_digest == digest:
            continue
        if run.status not in ACTIVE_STATUSES:
            continue  # ended: offered on the page, never asked again by itself
        if agent_id not in wanted:
            stop_for(run, EDITED_CODE)  # the edit took the mention out
            continue
        new = _ask_again_after_edit(run, comment)
        if new is not None:
            created.append(new)
    return created


def comment_deleted(comment: Any) -> list[AgentRun]:
    """Stop the comment's runs still going; the ledger keeps them all (SET_NULL)."""
    runs = list(AgentRun.objects.filter(comment=comment, status__in=ACTIVE_STATUSES))
    return [run for run in runs if stop_for(run, DELETED_CODE)]


# -- what the page shows ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    comment_id: str
    agent_id: str
    revision: int
    status: str
    question_digest: str
    reply_comment_id: str
    regenerates_id: int | None


_ROW_FIELDS: Final = (
    "run_id",
    "comment_id",
    "agent_id",
    "revision",
    "status",
    "question_digest",
    "reply_comment_id",
    "regenerates_id",
)


def _row(values: tuple[Any, ...]) -> RunRow:
    run_id, comment_id, agent_id, revision, status, digest, reply_id, regenerates_id = values
    return RunRow(
        str(run_id),
        str(comment_id),
        agent_id,
        revision,
        status,
        digest,
        "" if reply_id is None else str(reply_id),
        regenerates_id,
    )


class ThreadRevisions:
    """One thread's runs as the page's offers need them, by comment.

    From ``runs`` when the page loaded them already, else one query.
    """

    def __init__(self, thread_key: str, runs: Iterable[AgentRun] | None = None) -> None:
        rows: Iterable[tuple[Any, ...]]
        #: The runs themselves by run id, when given (for per-viewer permission checks).
        self.runs: dict[str, AgentRun] = {}
        if runs is not None:
            runs = list(runs)
            self.runs = {str(run.run_id): run for run in runs}
            rows = [tuple(getattr(run, name) for name in _ROW_FIELDS) for run in runs]
        else:
            rows = AgentRun.objects.filter(
                thread_key=thread_key, comment__isnull=False
            ).values_list(*_ROW_FIELDS)
        self.latest: dict[str, dict[str, RunRow]] = {}
        self.by_reply: dict[str, RunRow] = {}
        for row in map(_row, rows):
            per_agent = self.latest.setdefault(row.comment_id, {})
            if row.agent_id not in per_agent or per_agent[row.agent_id].revision < row.revision:
                per_agent[row.agent_id] = row
            if row.reply_comment_id:
                self.by_reply[row.reply_comment_id] = row


def ask_again_offers(comment: Any, revisions: ThreadRevisions) -> list[dict[str, str]]:
    """The "Ask <agent> again with the edited text" buttons under ``comment``.

    One per agent whose latest run replied to an older text of the comment.
    """
    from .fragments import run_url

    latest = revisions.latest.get(str(comment.pk), {})
    if not latest:
        return []
    adapter = get_adapter()
    digest = question_digest(adapter.text(comment))
    offers = []
    for agent_id, row in sorted(latest.items()):
        if row.status != Status.REPLIED or not row.question_digest:
            continue
        if row.question_digest == digest:
            continue
        offers.append(
            {
                "run_id": row.run_id,
                "agent_id": agent_id,
                "agent_name": adapter.agent_display_name(agent_id),
                "url": run_url("ask-again", AgentRun(run_id=row.run_id)),
            }
        )
    return offers


def reply_revision(comment: Any, revisions: ThreadRevisions | None = None) -> dict[str, Any]:
    """``regenerate_url`` and ``regenerated`` for an agent's reply ``comment``.

    ``revisions``: the page's runs of the thread; without them, one query.
    """
    from .fragments import run_url

    if revisions is not None:
        row = revisions.by_reply.get(str(comment.pk))
    else:
        found = AgentRun.objects.filter(reply_comment_id=comment.pk).values_list(*_ROW_FIELDS)
        first = found.first()
        row = _row(first) if first is not None else None
    if row is None:
        return {"regenerate_url": "", "regenerated": False}
    return {
        "regenerate_url": run_url("regenerate", AgentRun(run_id=row.run_id)),
        "regenerated": row.regenerates_id is not None,
    }
