"""The relay worker's database reads and writes, run in a thread (never on the loop)."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from .. import services
from ..models import AgentRun

#: A sweep handles at most this many runs; the next sweep takes the rest.
SWEEP_BATCH = 500


def mark_sent(refs: list[str]) -> None:
    for ref in refs:
        services.mark_sent(ref)


def run_for_event(event_id: str) -> AgentRun | None:
    active = (AgentRun.Status.ACCEPTED, AgentRun.Status.STREAMING)
    return AgentRun.objects.filter(event_id=event_id, status__in=active).first()


def sending_run_ids() -> list[str]:
    runs = AgentRun.objects.filter(status=AgentRun.Status.SENDING).exclude(payload={})
    return [str(run_id) for run_id in runs.values_list("run_id", flat=True)[:SWEEP_BATCH]]


def overdue_run_ids(after: float) -> list[str]:
    """What a lost or killed ``dispatch_run`` left behind, to be dispatched again.

    Queued and overdue retrying runs, and runs a task claimed but died on
    (released back to ``queued`` first). The worker claims them itself
    (:func:`~relaybridge.services.prepare_dispatch`); the claim is conditional, so
    a task that turns up late, or twice, does nothing.
    """
    abandoned = services.abandoned_claims(after).values_list("run_id", flat=True)[:SWEEP_BATCH]
    released = [r for r in abandoned if services.release_abandoned_claim(r, after)]
    overdue = services.runs_to_redispatch(after).values_list("run_id", flat=True)[:SWEEP_BATCH]
    return [str(run_id) for run_id in [*released, *overdue]]


def ended_run_ids(run_ids: list[str], older_than: float) -> list[str]:
    """Of ``run_ids``, those that ended (stopped, failed, replied) ``older_than`` ago or more."""
    ended = (AgentRun.Status.STOPPED, AgentRun.Status.FAILED, AgentRun.Status.REPLIED)
    cutoff = timezone.now() - timedelta(seconds=older_than)
    runs = AgentRun.objects.filter(run_id__in=run_ids, status__in=ended, updated_at__lt=cutoff)
    return [str(run_id) for run_id in runs.values_list("run_id", flat=True)]


def stalled_run_ids(older_than: float) -> list[str]:
    runs = services.stalled_runs(older_than)
    return [str(run_id) for run_id in runs.values_list("run_id", flat=True)[:SWEEP_BATCH]]
