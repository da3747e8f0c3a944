"""Counting what became of every mention of a scenario, straight from the database.

* **replied**: the run is ``replied`` and its one reply comment exists;
* **failed visibly**: the run is ``failed`` with a code and a readable reason;
* **stopped**: someone pressed Stop;
* **lost**: anything else when the scenario's deadline passed (a run still on its
  way, a failure without a reason, a mention that never became a run);
* **duplicated**: agent comments beyond the first for one (comment, agent).

Reply comments do not say which comment they answer, so they are counted per
(task, agent) against the replied runs of that task and agent: every comment
beyond those is a duplicate.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from tests.deployment.harness import Deployment, Mention, RunRow

COLUMNS = (
    "scenario",
    "mentions",
    "replied",
    "failed visibly",
    "stopped",
    "lost",
    "duplicated",
    "recovery p50 s",
    "recovery p99 s",
)
#: The columns summed in the total row (the recovery times are not).
SUMMED = 7


@dataclass
class Tally:
    scenario: str
    mentions: int = 0
    replied: int = 0
    failed_visibly: int = 0
    stopped: int = 0
    lost: int = 0
    duplicated: int = 0
    #: A reply comment whose run is not ``replied`` (or a replied run without it).
    mismatched: int = 0
    seconds: float = 0.0
    #: What the scenario did to the deployment (kills, injected frames, …).
    faults: dict[str, Any] = field(default_factory=dict)
    #: Error codes of the runs that failed visibly, and how often.
    failure_codes: dict[str, int] = field(default_factory=dict)
    #: The runs that failed visibly (agent, state, code, reason, and every attempt
    #: with why it was made), so a report says which fault the budget ran out on.
    failed_runs: list[str] = field(default_factory=list)
    #: How many sends the replied runs took (attempts -> runs): how close the runs
    #: that made it came to the resend budget.
    replied_after_attempts: dict[int, int] = field(default_factory=dict)
    #: Why runs were lost or mismatched, for the failure message.
    problems: list[str] = field(default_factory=list)
    #: Seconds from each fault to the end of the last run it affected (the runs in
    #: flight when it struck): the median and the 99th percentile over the faults.
    recovery_p50_s: float | None = None
    recovery_p99_s: float | None = None
    recovery_s: list[float] = field(default_factory=list)

    @property
    def row(self) -> tuple[object, ...]:
        return (
            self.scenario,
            self.mentions,
            self.replied,
            self.failed_visibly,
            self.stopped,
            self.lost,
            self.duplicated,
            "-" if self.recovery_p50_s is None else self.recovery_p50_s,
            "-" if self.recovery_p99_s is None else self.recovery_p99_s,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def assert_nothing_lost_or_doubled(self) -> None:
        assert (self.lost, self.duplicated, self.mismatched) == (0, 0, 0), (
            f"{self.scenario}: {self.lost} lost, {self.duplicated} duplicated, "
            f"{self.mismatched} mismatched\n" + "\n".join(self.problems[:40])
        )
        ended = self.replied + self.failed_visibly + self.stopped
        assert ended == self.mentions, f"{ended} of {self.mentions} mentions accounted for"


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` in 0..1) of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(share * len(ordered)))
    return ordered[rank - 1]


def in_flight(deployment: Deployment, mentions: Sequence[Mention]) -> list[Mention]:
    """The mentions whose run Relay had accepted and that had not ended (call as the
    fault strikes).

    Runs still waiting for their turn under the plan's limits (``sending``) are not
    counted: their wait is the pacing's, not the fault's.
    """
    going = {"accepted", "streaming"}
    runs = {run.comment_id: run for run in deployment.runs([m.comment_id for m in mentions])}
    return [m for m in mentions if (run := runs.get(m.comment_id)) and run.status in going]


def record_recovery(
    tally: Tally, deployment: Deployment, faults: Sequence[tuple[float, Sequence[Mention]]]
) -> None:
    """For each fault (its wall-clock time, the mentions in flight), the seconds until
    the last of their runs ended; their p50 and p99 go into the tally."""
    times = []
    for struck_at, affected in faults:
        if not affected:
            times.append(0.0)  # nothing was on its way: nothing to recover
            continue
        [(last,)] = deployment.query(
            "SELECT max(extract(epoch FROM finished_at)) FROM relaybridge_agentrun"
            " WHERE comment_id = ANY(%s)",
            [m.comment_id for m in affected],
        )
        if last is not None:
            times.append(round(max(0.0, float(last) - struck_at), 1))
    tally.recovery_s = times
    if times:
        tally.recovery_p50_s = percentile(times, 0.5)
        tally.recovery_p99_s = percentile(times, 0.99)


def _visible_failure(run: RunRow) -> bool:
    return run.status == "failed" and bool(run.error_code) and bool(run.error_message.strip())


def attempt_history(deployment: Deployment, run: RunRow) -> str:
    """The run's attempts as the ledger has them: ``#1 mention 12:00:01.2, #2 …``."""
    [(log,)] = deployment.query(
        "SELECT attempt_log FROM relaybridge_agentrun WHERE id = %s", run.id
    )
    return ", ".join(
        f"#{entry.get('attempt')} {entry.get('reason')} {str(entry.get('at', ''))[11:22]}"
        for entry in log or []
    )


def count(
    deployment: Deployment, scenario: str, mentions: Sequence[Mention], started: float
) -> Tally:
    """Classify every mention's run (one agent per mention) as the database has it now."""
    tally = Tally(scenario, mentions=len(mentions))
    runs = {run.comment_id: run for run in deployment.runs([m.comment_id for m in mentions])}
    replied_runs: Counter[tuple[int, str]] = Counter()
    for mention in mentions:
        run = runs.get(mention.comment_id)
        if run is None:
            tally.lost += 1
            tally.problems.append(f"comment {mention.comment_id}: no run")
        elif run.status == "replied":
            tally.replied += 1
            attempts = tally.replied_after_attempts
            attempts[run.attempts] = attempts.get(run.attempts, 0) + 1
            replied_runs[(mention.task_id, run.agent_id)] += 1
            replies = {c.id for c in deployment.agent_comments(mention.task_id)}
            if run.reply_comment_id not in replies:
                tally.mismatched += 1
                tally.problems.append(f"{run.brief()}: its reply comment is missing")
        elif _visible_failure(run):
            tally.failed_visibly += 1
            tally.failure_codes[run.error_code] = tally.failure_codes.get(run.error_code, 0) + 1
            history = attempt_history(deployment, run)
            tally.failed_runs.append(f"{run.brief()} ({run.run_id} {run.event_id}) {history}")
        elif run.status == "stopped":
            tally.stopped += 1
        else:
            tally.lost += 1
            tally.problems.append(f"lost: {run.brief()}")
    # Reply comments per (task, agent) against replied runs: one each, never more.
    for task_id in sorted({m.task_id for m in mentions}):
        written = Counter(c.agent_id for c in deployment.agent_comments(task_id))
        for agent_id in set(written) | {a for t, a in replied_runs if t == task_id}:
            extra = written[agent_id] - replied_runs[(task_id, agent_id)]
            if extra > 0:
                tally.duplicated += extra
                tally.problems.append(f"task {task_id}: {extra} reply comment(s) too many")
            elif extra < 0:
                tally.mismatched -= extra
    tally.seconds = round(time.monotonic() - started, 1)
    return tally


def settle(
    deployment: Deployment,
    scenario: str,
    mentions: Sequence[Mention],
    started: float,
    deadline: float,
) -> Tally:
    """Wait (up to ``deadline`` seconds) for every run to end, then count.

    A run that has not ended by then counts as lost rather than failing the wait:
    the tally says how many, and the test fails on it with the details.
    """
    ids = [m.comment_id for m in mentions]
    limit = time.monotonic() + deadline
    while time.monotonic() < limit:
        rows = deployment.runs(ids)
        if len(rows) == len(mentions) and all(row.ended for row in rows):
            break
        time.sleep(0.25)
    return count(deployment, scenario, mentions, started)


def table(tallies: Sequence[Tally]) -> str:
    """The tallies as a plain-text table, with a total row."""
    rows = [COLUMNS, *(t.row for t in tallies)]
    if tallies:
        totals = [sum(int(t.row[i]) for t in tallies) for i in range(1, SUMMED)]  # type: ignore[call-overload]
        rows.append(("total", *totals, *[""] * (len(COLUMNS) - SUMMED)))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(COLUMNS))]
    lines = []
    for index, row in enumerate(rows):
        cells = [
            str(v).ljust(w) if i == 0 else str(v).rjust(w)
            for i, (v, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(cells))
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
