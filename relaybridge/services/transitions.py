"""Status changes of a run, each one conditional update that reports whether it happened."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final
from uuid import UUID

from django.db import IntegrityError, transaction
from django.db.models import DateTimeField, F, PositiveIntegerField, Q
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..adapters import get_adapter
from ..conf import redact
from ..models import AgentRun
from ..questions import FINAL_STOP_CODES
from ..rendered import store_reply_html
from ..signals import ReplyInProgress, reply_in_progress
from .by_key import ValueByKey
from .runs import RunRef, as_uuid, queue_dispatch

Status = AgentRun.Status

_UNFINISHED: Final = (Status.QUEUED, Status.SENDING, Status.ACCEPTED, Status.STREAMING)
# A reply is the best possible outcome, so one arriving late (after the watchdog
# gave up, or while a retry waits) is still saved. Only a stop or an earlier reply
# wins over it.
_REPLYABLE: Final = (*_UNFINISHED, Status.RETRYING, Status.FAILED)


def _transition(
    run_id: RunRef,
    from_statuses: Iterable[str],
    to_status: str | None = None,
    *,
    where: Q | None = None,
    **changes: Any,
) -> bool:
    try:
        ref = as_uuid(run_id)
    except ValueError:
        return False
    if to_status is not None:
        changes["status"] = to_status
    changes.setdefault("updated_at", timezone.now())
    rows = AgentRun.objects.filter(run_id=ref, status__in=list(from_statuses))
    if where is not None:
        rows = rows.filter(where)
    return rows.update(**changes) == 1


def claim_for_sending(run_id: RunRef) -> AgentRun | None:
    """``queued``/``retrying`` → ``sending`` for one dispatch attempt; None if taken."""
    claimed = _transition(
        run_id,
        (Status.QUEUED, Status.RETRYING),
        Status.SENDING,
        attempts=F("attempts") + 1,
        event_id=None,
        sent_at=None,
        next_attempt_at=None,
    )
    if not claimed:
        return None
    run = AgentRun.objects.select_related("comment").get(run_id=as_uuid(run_id))
    # The ledger of attempts: the claim is this caller's alone, so the list is its too.
    log = list(run.attempt_log or [])
    reason = run.error_code or ("retry_button" if log and run.attempts == 1 else "mention")
    log.append({"attempt": run.attempts, "reason": reason, "at": timezone.now().isoformat()})
    AgentRun.objects.filter(pk=run.pk).update(attempt_log=log)
    run.attempt_log = log
    return run


def release_abandoned_claim(run_id: RunRef, older_than: float) -> bool:
    """``sending`` → ``queued`` for a claim whose ``dispatch_run`` died before the payload.

    Conditional on the run still being claimed, payload-less and idle for
    ``older_than`` seconds, so a dispatch that is merely slow keeps its claim. The
    attempt that never reached Relay is not counted.
    """
    try:
        ref = as_uuid(run_id)
    except ValueError:
        return False
    now = timezone.now()
    rows = (
        AgentRun.objects.filter(
            Q(payload__isnull=True) | Q(payload={}),
            run_id=ref,
            status=Status.SENDING,
            updated_at__lt=now - timedelta(seconds=older_than),
        )
        .exclude(attempts=0)
        .update(status=Status.QUEUED, attempts=F("attempts") - 1, updated_at=now)
    )
    return rows == 1


def store_payload(run_id: RunRef, payload: Mapping[str, Any]) -> bool:
    return _transition(run_id, (Status.SENDING,), payload=dict(payload))


def mark_sent(run_id: RunRef, *, windowed: bool = True) -> bool:
    """The worker wrote the event to Relay (again, after a reconnect)."""
    return bool(mark_sent_many([run_id], windowed=windowed))


def mark_sent_many(run_ids: Iterable[RunRef], *, windowed: bool = True) -> int:
    """:func:`mark_sent` for a batch of runs (three queries in all); how many it marked.

    The time goes on the run (``sent_at``) and on its attempt's entry in the ledger
    (``sent``), where it stays when the run is sent again: every event sent counts
    against the plan's per-minute and per-hour windows, and a worker that takes the
    connection over paces by them (``recent_send_times``). Events a worker sent with
    no plan limits (``windowed=False``: the emulator's ``unlimited`` plan, for
    benchmarks) are marked ``unpaced`` and never count, as its own windows never
    counted them.
    """
    refs = []
    for run_id in run_ids:
        try:
            refs.append(as_uuid(run_id))
        except ValueError:
            continue
    now = timezone.now()
    with transaction.atomic():
        # Locked, so that no other write of the log is lost between read and write.
        runs = list(
            AgentRun.objects.select_for_update()
            .filter(run_id__in=refs, status=Status.SENDING)
            .only("pk", "attempt_log")
        )
        for run in runs:
            log = list(run.attempt_log or [])
            if log:
                entry = {**log[-1], "sent": now.isoformat()}
                entry.pop("unpaced", None)
                if not windowed:
                    entry["unpaced"] = True
                log[-1] = entry
            run.attempt_log, run.sent_at, run.updated_at = log, now, now
        AgentRun.objects.bulk_update(runs, ["attempt_log", "sent_at", "updated_at"])
    return len(runs)


def recent_send_times(within_s: float) -> list[datetime]:
    """When events were sent to Relay in the last ``within_s`` seconds, oldest first.

    From the ledger, so from every worker that held the connection meanwhile. An
    attempt sent again after a reconnect keeps its last send only; a send made with
    no plan limits (``unpaced``) is not counted.
    """
    since = timezone.now() - timedelta(seconds=within_s)
    logs = AgentRun.objects.filter(updated_at__gte=since).values_list("attempt_log", flat=True)
    times = []
    for log in logs.iterator():
        for entry in log or []:
            counted = isinstance(entry, dict) and not entry.get("unpaced")
            sent = entry.get("sent") if counted else None
            at = parse_datetime(sent) if isinstance(sent, str) else None
            if at is not None and at >= since:
                times.append(at)
    return sorted(times)


def mark_accepted(run_id: RunRef, event_id: str) -> bool:
    """``sending`` → ``accepted`` with Relay's event id (False if taken or a duplicate id)."""
    now = timezone.now()
    try:
        with transaction.atomic():
            return _transition(
                run_id,
                (Status.SENDING,),
                Status.ACCEPTED,
                event_id=event_id,
                accepted_at=now,
                updated_at=now,
            )
    except IntegrityError:
        return False


def record_first_token(run_id: RunRef) -> bool:
    """``accepted`` → ``streaming``, recording our time to first token."""
    return bool(record_first_tokens({run_id: timezone.now()}))


def record_first_tokens(arrivals: Mapping[RunRef, datetime]) -> set[RunRef]:
    """:func:`record_first_token` for many runs at once: the keys of those it moved.

    ``arrivals`` maps each run to when its first token came. Two queries in all,
    however many runs: where many answers begin together (the relay worker collects
    them while a write is under way), one write per run would be most of its work.
    """
    refs: dict[UUID, RunRef] = {}
    for run_id, _at in arrivals.items():
        try:
            refs[as_uuid(run_id)] = run_id
        except ValueError:
            continue
    rows = AgentRun.objects.filter(run_id__in=list(refs), status=Status.ACCEPTED).values_list(
        "run_id", "sent_at", "queued_at"
    )
    first_at: dict[UUID, datetime] = {}
    first_ms: dict[UUID, int] = {}
    for ref, sent_at, queued_at in rows:
        at = first_at[ref] = arrivals[refs[ref]]
        first_ms[ref] = max(0, int((at - (sent_at or queued_at)).total_seconds() * 1000))
    if not first_at:
        return set()
    accepted = list(first_at)
    moved = AgentRun.objects.filter(run_id__in=accepted, status=Status.ACCEPTED).update(
        status=Status.STREAMING,
        first_token_at=ValueByKey("run_id", first_at, DateTimeField()),
        first_token_ms=ValueByKey("run_id", first_ms, PositiveIntegerField()),
        updated_at=timezone.now(),
    )
    if moved < len(accepted):
        # One was stopped between the two queries: ask which ones moved.
        accepted = list(
            AgentRun.objects.filter(
                run_id__in=accepted, status=Status.STREAMING, first_token_at__isnull=False
            ).values_list("run_id", flat=True)
        )
    return {refs[ref] for ref in accepted}


def touch(run_id: RunRef) -> bool:
    """Record progress on an accepted or streaming run, so the watchdog leaves it be."""
    return _transition(run_id, (Status.ACCEPTED, Status.STREAMING))


def touch_runs(run_ids: Iterable[RunRef]) -> set[RunRef]:
    """:func:`touch` for many runs at once: those it touched (one query, two if one of
    them had ended meanwhile)."""
    refs: dict[UUID, RunRef] = {}
    for run_id in run_ids:
        try:
            refs[as_uuid(run_id)] = run_id
        except ValueError:
            continue
    if not refs:
        return set()
    active = (Status.ACCEPTED, Status.STREAMING)
    rows = AgentRun.objects.filter(run_id__in=list(refs), status__in=active)
    if rows.update(updated_at=timezone.now()) == len(refs):
        return set(refs.values())
    still = AgentRun.objects.filter(run_id__in=list(refs), status__in=active)
    return {refs[ref] for ref in still.values_list("run_id", flat=True)}


#: What a ``PositiveIntegerField`` holds on every database Django supports.
_COUNT_MAX = 2**31 - 1


def _count(value: Any) -> int | None:
    """A count from reply metadata bounded to its column; None when it is no number.

    Too large, negative, fractional or not finite: metadata is informational, and a
    value the column cannot hold must never cost the reply it came with.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    count = int(value)
    return max(0, min(count, _COUNT_MAX))


def _metadata_fields(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    metadata = metadata or {}
    model = metadata.get("model")
    return {
        "tokens_used": _count(metadata.get("tokens_used")),
        "relay_latency_ms": _count(metadata.get("latency_ms")),
        # Shown in the admin: redacted first, then cut to the column.
        "model_name": redact(model)[:200] if isinstance(model, str) else "",
    }


def record_reply(run_id: RunRef, text: str, metadata: Mapping[str, Any] | None = None) -> Any:
    """Save the agent's reply as a comment, exactly once per run; None if already done.

    The conditional update and the comment are one transaction: a second reply, a
    redelivery or a second worker finds the run ``replied`` and creates nothing,
    and a failure saving the comment leaves the run as it was.
    """
    saved = record_reply_and_run(run_id, text, metadata)
    return None if saved is None else saved[1]


def record_reply_and_run(
    run_id: RunRef, text: str, metadata: Mapping[str, Any] | None = None
) -> tuple[AgentRun, Any] | None:
    """:func:`record_reply`, returning the run as saved with the reply comment.

    The run is the row as it stands once the reply is kept (``replied``, its reply
    comment and the reply's stored HTML), so that whoever announces the reply needs
    no second read of it.
    """
    now = timezone.now()
    with transaction.atomic():
        if not _transition(
            run_id,
            _REPLYABLE,
            Status.REPLIED,
            finished_at=now,
            next_attempt_at=None,
            error_code="",
            error_message="",
            partial_text="",
            updated_at=now,
            **_metadata_fields(metadata),
        ):
            return None
        run = AgentRun.objects.select_related("comment").get(run_id=as_uuid(run_id))
        # Whatever the adapter saves meanwhile is this agent's reply, one hop further
        # down the chain, however (and whenever) the adapter marks it as the agent's.
        token = reply_in_progress.set(ReplyInProgress(run.run_id, run.agent_id, run.hop_depth + 1))
        try:
            # An agent may repeat a token it was shown; the thread never keeps one.
            reply = get_adapter().save_reply(run, redact(text))
        finally:
            reply_in_progress.reset(token)
        AgentRun.objects.filter(pk=run.pk).update(reply_comment=reply)
        run.reply_comment = reply
    # Rendered once, here, for every page that will show it (outside the
    # transaction: a copy lost to a crash is made again on the next view).
    run.reply_html, run.reply_digest = store_reply_html(run.pk, reply)
    return run, reply


def record_error(
    run_id: RunRef,
    code: str,
    message: str,
    retry_in: float | None = None,
    *,
    partial_text: str | None = None,
    schedule: bool = True,
) -> bool:
    """A failed attempt: ``retrying`` in ``retry_in`` seconds, or ``failed`` when None.

    With ``schedule`` the retry's ``dispatch_run`` is queued (after commit) with that
    countdown. ``message`` is shown to people: it is redacted and shortened.
    """
    now = timezone.now()
    fields: dict[str, Any] = {
        "error_code": redact(code)[:64],
        "error_message": redact(message)[:2000],
        "updated_at": now,
    }
    if partial_text is not None:
        fields["partial_text"] = redact(partial_text)
    unfinished = (*_UNFINISHED, Status.RETRYING)
    if retry_in is None:
        return _transition(
            run_id, unfinished, Status.FAILED, finished_at=now, next_attempt_at=None, **fields
        )
    delay = max(0.0, float(retry_in))
    changed = _transition(
        run_id,
        unfinished,
        Status.RETRYING,
        next_attempt_at=now + timedelta(seconds=delay),
        **fields,
    )
    if changed and schedule:
        queue_dispatch(run_id, countdown=delay)
    return changed


def _user_id(user: Any) -> Any:
    """The id recorded for ``user`` (None for nobody, or for an anonymous user)."""
    return getattr(user, "pk", None) if getattr(user, "is_authenticated", False) else None


def mark_stopped(run_id: RunRef, partial_text: str = "", by: Any = None) -> bool:
    """Someone (``by``, a user) pressed Stop: the run ends now, keeping what was
    streamed so far; the ledger records who and when."""
    now = timezone.now()
    return _transition(
        run_id,
        (*_UNFINISHED, Status.RETRYING),
        Status.STOPPED,
        partial_text=redact(partial_text),
        finished_at=now,
        next_attempt_at=None,
        updated_at=now,
        stopped_by_id=_user_id(by),
        stopped_at=now,
    )


def retry_run(run_id: RunRef, by: Any = None) -> bool:
    """The Retry button (pressed by ``by``, a user): a failed or stopped run starts
    over and is dispatched on commit; the ledger records who and when.

    Not a run whose question was edited or deleted: that one is final.
    """
    now = timezone.now()
    changed = _transition(
        run_id,
        (Status.FAILED, Status.STOPPED),
        Status.QUEUED,
        where=Q(comment__isnull=False) & ~Q(error_code__in=FINAL_STOP_CODES),
        attempts=0,
        event_id=None,
        error_code="",
        error_message="",
        partial_text="",
        next_attempt_at=None,
        sent_at=None,
        accepted_at=None,
        first_token_at=None,
        first_token_ms=None,
        finished_at=None,
        queued_at=now,
        updated_at=now,
        retried_by_id=_user_id(by),
        retried_at=now,
    )
    if changed:
        queue_dispatch(run_id)
    return changed
