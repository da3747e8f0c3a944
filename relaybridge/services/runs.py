"""Creating runs, queueing their dispatch, and the queries the worker sweeps with."""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import IntegrityError, connections, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..adapters import get_adapter
from ..conf import loggable, relay_settings
from ..mentions import is_valid_agent_id
from ..models import ACTIVE_STATUSES, AgentRun
from ..questions import question_fields
from ..quotas import Subject, quota_rules
from . import admission
from .backstop import HOP_LIMIT_CODE, hop_limit_reason, hops_admitted

logger = logging.getLogger("relaybridge")

#: A run reference: our ``run_id`` as a UUID or its string form.
RunRef = uuid.UUID | str

Status = AgentRun.Status


def as_uuid(run_id: RunRef) -> uuid.UUID:
    return run_id if isinstance(run_id, uuid.UUID) else uuid.UUID(str(run_id))


def get_run(run_id: RunRef) -> AgentRun | None:
    """The run, or None; its ``comment`` is None once that comment was deleted."""
    try:
        return AgentRun.objects.select_related("comment").get(run_id=as_uuid(run_id))
    except (AgentRun.DoesNotExist, ValueError):
        return None


def create_runs(
    comment: Any, agent_ids: Iterable[str], requested_by: Any = None, *, hop_depth: int = 0
) -> list[AgentRun]:
    """Create one run per new agent for ``comment``; return only the new ones.

    Idempotent: an agent that already has a run for this comment is skipped, and a
    concurrent duplicate loses on the database's unique constraint (each run is
    revision 1; later revisions are :mod:`relaybridge.revisions`'). At most
    ``RELAYBRIDGE_MAX_MENTIONS`` runs exist per comment, counting earlier ones.

    New runs are ``queued``, except those admission or the loop backstop says no
    to: those are created ``refused``, with the reason, and must not be dispatched.
    Admission (:mod:`.admission`) checks who may call the agent and the quotas,
    against the person the run is charged to: ``requested_by``, or for a run
    started by an agent's reply (``hop_depth`` > 0), the person at the start of
    the chain. The backstop (:mod:`.backstop`) caps hop runs per thread.
    """
    wanted: list[str] = []
    for agent_id in agent_ids:
        if is_valid_agent_id(agent_id) and agent_id not in wanted:
            wanted.append(agent_id)
    if not wanted:
        return []
    existing = set(AgentRun.objects.filter(comment=comment).values_list("agent_id", flat=True))
    room = relay_settings.MAX_MENTIONS - len(existing)
    wanted = [agent_id for agent_id in wanted if agent_id not in existing][: max(room, 0)]
    if not wanted:
        return []

    adapter = get_adapter()
    thread = adapter.thread_for(comment)
    person = requested_by if getattr(requested_by, "pk", None) is not None else None
    if person is not None:
        person_id = person.pk
    elif hop_depth > 0:
        person_id = admission.chain_person_id(comment)
        if person_id is not None and admission.needs_person(adapter):
            person = admission.load_person(person_id)
    else:
        person_id = None
    fields = {
        "comment": comment,
        "thread_id": adapter.thread_id(thread),
        "thread_key": adapter.thread_key(thread),
        "requested_by": requested_by if getattr(requested_by, "pk", None) is not None else None,
        "charged_to_id": person_id,
        "hop_depth": max(hop_depth, 0),
        **question_fields(comment),
    }
    subject = Subject(person_id=person_id, thread_key=str(fields["thread_key"]))
    if hop_depth <= 0 and not quota_rules():
        refused = admission.refusals(adapter, thread, wanted, person, subject, timezone.now())
        return _insert_runs(wanted, fields, refused)
    # The counts and the inserts share one transaction: the locks the quotas and the
    # backstop take are held until the runs they admitted are committed.
    with transaction.atomic():
        now = timezone.now()
        refused = admission.refusals(adapter, thread, wanted, person, subject, now)
        if hop_depth > 0:
            admitted = [agent_id for agent_id in wanted if agent_id not in refused]
            allowed = hops_admitted(str(fields["thread_key"]), len(admitted), now)
            for agent_id in admitted[allowed:]:
                refused[agent_id] = admission.Refusal(HOP_LIMIT_CODE, hop_limit_reason())
        return _insert_runs(wanted, fields, refused, now=now)


def _insert_runs(
    agent_ids: list[str],
    fields: dict[str, Any],
    refused: dict[str, admission.Refusal],
    *,
    now: Any = None,
) -> list[AgentRun]:
    """Insert a run per agent: queued, or refused with the reason ``refused`` gives."""
    created: list[AgentRun] = []
    for agent_id in agent_ids:
        refusal = refused.get(agent_id)
        extra: dict[str, Any] = {}
        if refusal is not None:
            extra = {
                "status": Status.REFUSED,
                "error_code": refusal.code,
                "error_message": refusal.message,
                "finished_at": now or timezone.now(),
            }
        try:
            # A savepoint per run: a duplicate rolls back only itself, even on PostgreSQL.
            with transaction.atomic():
                run = AgentRun.objects.create(agent_id=agent_id, **fields, **extra)
        except IntegrityError:
            continue
        if refusal is not None:
            logger.warning(
                "refused run %s of %s on %s [%s]",
                run.run_id,
                loggable(agent_id),
                loggable(run.thread_id),
                refusal.code,
            )
        created.append(run)
    return created


def queue_dispatch(run_id: RunRef, countdown: float | None = None) -> None:
    """Queue ``dispatch_run`` for the run once the current transaction commits.

    A broker that cannot be reached must not fail the request that saved the
    comment: the error is logged and the run stays where it is, for the relay
    worker's sweep (:func:`runs_to_redispatch`) to pick up.
    """
    ref = str(run_id)

    def send() -> None:
        from .dispatch import dispatch_task

        try:
            dispatch_run = dispatch_task()
            if countdown and dispatch_run.app.conf.task_always_eager:
                # Eager Celery ignores countdowns; keep the backoff in-process instead.
                _dispatch_later(ref, countdown)
            else:
                dispatch_run.apply_async((ref,), countdown=countdown or 0)
        except Exception:
            logger.exception("could not queue the dispatch of run %s; left for the sweep", ref)

    transaction.on_commit(send)


def _dispatch_later(run_id: str, countdown: float) -> threading.Timer:
    """Dispatch the run after ``countdown`` seconds from a daemon timer thread.

    A process that stops meanwhile loses the timer, not the run: it stays
    ``retrying`` with its ``next_attempt_at`` for the worker's sweep.
    """

    def fire() -> None:
        from .dispatch import dispatch_task

        try:
            dispatch_task().apply((run_id,))
        finally:
            connections.close_all()  # this thread's connections only

    timer = threading.Timer(countdown, fire)
    timer.daemon = True
    timer.start()
    return timer


def _cutoff(older_than: timedelta | float) -> Any:
    if not isinstance(older_than, timedelta):
        older_than = timedelta(seconds=older_than)
    return timezone.now() - older_than


def stalled_runs(older_than: timedelta | float) -> QuerySet[AgentRun]:
    """Accepted or streaming runs without progress (``updated_at``) for ``older_than``."""
    return AgentRun.objects.filter(
        status__in=[Status.ACCEPTED, Status.STREAMING], updated_at__lt=_cutoff(older_than)
    )


def overlong_runs(older_than: timedelta | float) -> QuerySet[AgentRun]:
    """Accepted or streaming runs accepted ``older_than`` ago or more, still going.

    An agent that trickles (a byte now and then) never looks stalled; this bounds
    how long one answer may take (``RELAYBRIDGE_MAX_ANSWER_SECONDS``).
    """
    return AgentRun.objects.filter(
        status__in=[Status.ACCEPTED, Status.STREAMING], accepted_at__lt=_cutoff(older_than)
    )


def runs_to_sweep(older_than: timedelta | float = 0.0) -> QuerySet[AgentRun]:
    """Runs handed to the worker (``sending``) but never sent, idle for ``older_than``.

    Their intake message was lost (no worker listened, or the layer send failed);
    the worker sends them from the stored payload.
    """
    return AgentRun.objects.filter(
        status=Status.SENDING, sent_at__isnull=True, updated_at__lte=_cutoff(older_than)
    ).order_by("queued_at", "id")


def runs_to_redispatch(older_than: timedelta | float = 60.0) -> QuerySet[AgentRun]:
    """Queued runs idle for ``older_than`` and retrying runs overdue by ``older_than``.

    Their ``dispatch_run`` never ran (a broker outage, a lost countdown); calling
    ``dispatch_run`` for each is safe because the claim is conditional.
    """
    cutoff = _cutoff(older_than)
    return AgentRun.objects.filter(
        Q(status=Status.QUEUED, updated_at__lt=cutoff)
        | Q(status=Status.RETRYING, next_attempt_at__lt=cutoff)
    ).order_by("queued_at", "id")


def abandoned_claims(older_than: timedelta | float) -> QuerySet[AgentRun]:
    """``sending`` runs without a payload, idle for ``older_than``.

    ``dispatch_run`` claimed them and died before storing the payload (a Celery
    worker killed mid-task). Nothing else would ever move them: the broker may
    redeliver the task only much later, and then finds the run claimed.
    """
    return AgentRun.objects.filter(
        Q(payload__isnull=True) | Q(payload={}),
        status=Status.SENDING,
        updated_at__lt=_cutoff(older_than),
    ).order_by("queued_at", "id")


def active_runs(thread_key: str) -> QuerySet[AgentRun]:
    """The thread's runs that have not ended yet, oldest first (a page's snapshot)."""
    return AgentRun.objects.filter(thread_key=thread_key, status__in=ACTIVE_STATUSES).order_by(
        "queued_at", "id"
    )
