"""Usage: who called which agent, how much, and what it cost, for a range of days.

:func:`usage_report` reads the run ledger with a fixed number of aggregate queries
(five, however many runs the range holds), on the indexes migration 0005 adds:

* per agent, per person (the person each run is charged to) and per day: runs by
  outcome and the tokens Relay's replies reported;
* per agent, person and day: first-token time p50/p95, from a bounded sample of the
  range's most recent runs (:data:`SAMPLE_SIZE` rows of four small values);
* failures by agent and code.

:func:`chart_svg` draws runs per day as SVG markup made on the server -- no script,
no style attribute, so it shows under a strict Content-Security-Policy -- and
:func:`csv_rows` gives the same tables for a CSV export, each cell guarded against
formula injection (:func:`csv_cell`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Final

from django.contrib.auth import get_user_model
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone
from django.utils.html import escape

from .models import ACTIVE_STATUSES, AgentRun

Status = AgentRun.Status

#: At most this many first-token times are read for the percentiles (the newest).
SAMPLE_SIZE: Final = 20_000
#: The longest range one report covers.
MAX_DAYS: Final = 366
#: The outcomes a report counts, in the order tables show them.
OUTCOMES: Final = ("replied", "failed", "stopped", "refused", "active")


def _outcome_counts() -> dict[str, Any]:
    return {
        "runs": Count("id"),
        "replied": Count("id", filter=Q(status=Status.REPLIED)),
        "failed": Count("id", filter=Q(status=Status.FAILED)),
        "stopped": Count("id", filter=Q(status=Status.STOPPED)),
        "refused": Count("id", filter=Q(status=Status.REFUSED)),
        "active": Count("id", filter=Q(status__in=ACTIVE_STATUSES)),
        "tokens": Sum("tokens_used"),
    }


@dataclass
class Row:
    """One line of a table: a key (an agent, a person, a day) and its counts."""

    key: str
    runs: int = 0
    replied: int = 0
    failed: int = 0
    stopped: int = 0
    refused: int = 0
    active: int = 0
    tokens: int = 0
    p50_ms: int | None = None
    p95_ms: int | None = None

    @classmethod
    def from_values(cls, key: str, values: Mapping[str, Any]) -> Row:
        return cls(
            key=key,
            runs=values["runs"],
            replied=values["replied"],
            failed=values["failed"],
            stopped=values["stopped"],
            refused=values["refused"],
            active=values["active"],
            tokens=values["tokens"] or 0,
        )


@dataclass
class UsageReport:
    start: date
    end: date
    agents: list[Row] = field(default_factory=list)
    people: list[Row] = field(default_factory=list)
    days: list[Row] = field(default_factory=list)
    #: (agent, code, count), most frequent first.
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    #: Whether the first-token percentiles come from a sample of the range.
    sampled: bool = False

    @property
    def total(self) -> Row:
        total = Row(key="total")
        for row in self.agents:
            for name in ("runs", *OUTCOMES, "tokens"):
                setattr(total, name, getattr(total, name) + getattr(row, name))
        return total


def day_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """The range's first instant and the instant after it, in the current time zone."""
    zone = timezone.get_current_timezone()
    since = timezone.make_aware(datetime.combine(start, time.min), zone)
    until = timezone.make_aware(datetime.combine(end + timedelta(days=1), time.min), zone)
    return since, until


def runs_between(start: date, end: date) -> QuerySet[AgentRun]:
    since, until = day_bounds(start, end)
    return AgentRun.objects.filter(queued_at__gte=since, queued_at__lt=until)


def percentile(values: list[int], fraction: float) -> int | None:
    """The nearest-rank percentile of sorted ``values`` (None when there are none)."""
    if not values:
        return None
    rank = max(1, math.ceil(fraction * len(values)))
    return values[rank - 1]


def usage_report(start: date, end: date) -> UsageReport:
    """The usage between ``start`` and ``end`` (days in the current time zone, inclusive)."""
    report = UsageReport(start=start, end=end)
    runs = runs_between(start, end)
    counts = _outcome_counts()

    by_agent = runs.values("agent_id").annotate(**counts).order_by("agent_id")
    report.agents = [Row.from_values(row["agent_id"], row) for row in by_agent]

    user_field = f"charged_to__{get_user_model().USERNAME_FIELD}"
    by_person = (
        runs.values("charged_to", user_field).annotate(**counts).order_by("-runs", user_field)
    )
    people = list(by_person)
    report.people = [Row.from_values(str(row[user_field] or "—"), row) for row in people]
    person_ids = [row["charged_to"] for row in people]

    zone = timezone.get_current_timezone()
    by_day = (
        runs.annotate(day=TruncDate("queued_at", tzinfo=zone))
        .values("day")
        .annotate(**counts)
        .order_by("day")
    )
    found = {row["day"]: row for row in by_day}
    day = start
    while day <= end:
        values = found.get(day)
        report.days.append(
            Row.from_values(day.isoformat(), values) if values else Row(key=day.isoformat())
        )
        day += timedelta(days=1)

    sample = list(
        runs.filter(first_token_ms__isnull=False)
        .order_by("-queued_at")
        .values_list("agent_id", "charged_to", "queued_at", "first_token_ms")[: SAMPLE_SIZE + 1]
    )
    report.sampled = len(sample) > SAMPLE_SIZE
    # First-token times by agent, by person (their id) and by day, from one sample.
    times: dict[tuple[str, Any], list[int]] = {}
    for agent_id, person_id, queued_at, ms in sample[:SAMPLE_SIZE]:
        if ms is None:
            continue
        local_day = timezone.localtime(queued_at, zone).date().isoformat()
        for key in (("agent", agent_id), ("person", person_id), ("day", local_day)):
            times.setdefault(key, []).append(ms)
    for table, rows, keys in (
        ("agent", report.agents, [row.key for row in report.agents]),
        ("person", report.people, person_ids),
        ("day", report.days, [row.key for row in report.days]),
    ):
        for row, key in zip(rows, keys, strict=True):
            ordered = sorted(times.get((table, key), []))
            row.p50_ms, row.p95_ms = percentile(ordered, 0.5), percentile(ordered, 0.95)

    failures = (
        runs.filter(status=Status.FAILED)
        .values("agent_id", "error_code")
        .annotate(count=Count("id"))
        .order_by("-count", "agent_id", "error_code")
    )
    report.failures = [(row["agent_id"], row["error_code"], row["count"]) for row in failures]
    return report


# -- the chart ---------------------------------------------------------------------------

#: Fill colours of the chart's bars, by outcome (presentation attributes, not styles).
_COLOURS: Final = {
    "replied": "#417690",
    "failed": "#ba2121",
    "refused": "#c9a227",
    "other": "#9aa5ab",
}
_WIDTH: Final = 720
_HEIGHT: Final = 200
_MARGIN: Final = 24


def chart_svg(days: list[Row], title: str = "Runs per day") -> str:
    """An SVG bar chart of runs per day, stacked by outcome; every text escaped."""
    count = max(len(days), 1)
    peak = max((row.runs for row in days), default=0) or 1
    plot_w = _WIDTH - 2 * _MARGIN
    plot_h = _HEIGHT - 2 * _MARGIN
    slot = plot_w / count
    bar = max(slot * 0.8, 1.0)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="relaybridge-usage-chart" '
        f'width="{_WIDTH}" height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" '
        f'role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<line x1="{_MARGIN}" y1="{_HEIGHT - _MARGIN}" x2="{_WIDTH - _MARGIN}" '
        f'y2="{_HEIGHT - _MARGIN}" stroke="#666" stroke-width="1"/>',
        f'<text x="{_MARGIN}" y="{_MARGIN - 8}" font-size="11" fill="#333">'
        f"{escape(str(peak))}</text>",
    ]
    for index, row in enumerate(days):
        x = _MARGIN + index * slot + (slot - bar) / 2
        y = float(_HEIGHT - _MARGIN)
        other = row.runs - row.replied - row.failed - row.refused
        for outcome, value in (
            ("replied", row.replied),
            ("failed", row.failed),
            ("refused", row.refused),
            ("other", other),
        ):
            if value <= 0:
                continue
            height = plot_h * value / peak
            y -= height
            label = f"{row.key}: {value} {outcome}"
            parts.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{height:.1f}" '
                f'fill="{_COLOURS[outcome]}" data-day="{escape(row.key)}" '
                f'data-outcome="{outcome}"><title>{escape(label)}</title></rect>'
            )
    if days:
        for index in sorted({0, len(days) - 1}):
            x = _MARGIN + index * slot + slot / 2
            anchor = "start" if index == 0 else "end"
            parts.append(
                f'<text x="{x:.1f}" y="{_HEIGHT - 6}" font-size="11" fill="#333" '
                f'text-anchor="{anchor}">{escape(days[index].key)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


# -- CSV ---------------------------------------------------------------------------------

#: A cell starting with one of these is read as a formula by spreadsheet programs.
_FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")

CSV_HEADER: Final = (
    "table",
    "key",
    "runs",
    "replied",
    "failed",
    "stopped",
    "refused",
    "active",
    "tokens",
    "first_token_p50_ms",
    "first_token_p95_ms",
)


def csv_cell(value: Any) -> str:
    """``value`` as a CSV cell that no spreadsheet runs as a formula (``'`` before it)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _row_cells(table: str, row: Row) -> list[Any]:
    return [
        table,
        row.key,
        row.runs,
        row.replied,
        row.failed,
        row.stopped,
        row.refused,
        row.active,
        row.tokens,
        row.p50_ms,
        row.p95_ms,
    ]


def csv_rows(report: UsageReport) -> Iterator[list[str]]:
    """The report's tables as CSV rows (header first), each cell guarded."""
    yield list(CSV_HEADER)
    tables: Iterable[tuple[str, list[Row]]] = (
        ("agent", report.agents),
        ("person", report.people),
        ("day", report.days),
    )
    for table, rows in tables:
        for row in rows:
            yield [csv_cell(cell) for cell in _row_cells(table, row)]
    for agent_id, code, count in report.failures:
        cells = ["failure", f"{agent_id} {code}", count, "", count]
        yield [csv_cell(cell) for cell in cells] + [""] * (len(CSV_HEADER) - len(cells))


def top_users(day: date | None = None, per_agent: int = 3) -> dict[str, list[Row]]:
    """The people who used each agent most on ``day`` (today by default), in one query."""
    day = day or timezone.localdate()
    user_field = f"charged_to__{get_user_model().USERNAME_FIELD}"
    rows = (
        runs_between(day, day)
        .exclude(status=Status.REFUSED)
        .values("agent_id", "charged_to", user_field)
        .annotate(**_outcome_counts())
        .order_by("agent_id", "-runs", user_field)
    )
    found: dict[str, list[Row]] = {}
    for row in rows:
        people = found.setdefault(row["agent_id"], [])
        if len(people) < per_agent:
            people.append(Row.from_values(str(row[user_field] or "—"), row))
    return found
