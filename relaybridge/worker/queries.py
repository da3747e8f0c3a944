"""The relay worker's database reads and writes, run in a thread (never on the loop)."""

from __future__ import annotations

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


def redispatch_overdue() -> int:
    from ..tasks import dispatch_run

    run_ids = list(services.runs_to_redispatch(60.0).values_list("run_id", flat=True)[:SWEEP_BATCH])
    for run_id in run_ids:
        dispatch_run.delay(str(run_id))
    return len(run_ids)


def stalled_run_ids(older_than: float) -> list[str]:
    runs = services.stalled_runs(older_than)
    return [str(run_id) for run_id in runs.values_list("run_id", flat=True)[:SWEEP_BATCH]]
