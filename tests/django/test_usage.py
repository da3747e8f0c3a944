"""The usage page: runs, tokens and first-token times per agent, person and day."""

from __future__ import annotations

import csv
import io
import random
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from project.tasks.models import Comment, Task
from relaybridge.models import AgentRun
from relaybridge.usage import chart_svg, csv_cell, percentile, usage_report

Status = AgentRun.Status
URL = "/admin/relaybridge/agentrun/usage/"
AGENTS = ("athena", "klyve", "slow", "sleepy", "stall")


def viewer(db: None = None) -> Client:
    """A staff member who may view runs (and nothing else)."""
    staff = get_user_model().objects.create_user("auditor", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_agentrun"))
    client = Client()
    client.force_login(staff)
    return client


def make_runs(task: Task, people: list[Any], count: int, days: int = 14) -> list[AgentRun]:
    """``count`` runs over the last ``days`` days, in bulk (one comment per five runs)."""
    rng = random.Random(17)
    comments = Comment.objects.bulk_create(
        [Comment(task=task, author=people[0], body=f"@all {n}") for n in range(count // 5 + 1)]
    )
    now = timezone.now()
    outcomes = [Status.REPLIED] * 6 + [Status.FAILED, Status.STOPPED, Status.REFUSED, Status.QUEUED]
    runs = []
    for n in range(count):
        status = outcomes[(n // 5) % len(outcomes)]
        runs.append(
            AgentRun(
                comment=comments[n // 5],
                agent_id=AGENTS[n % 5],
                thread_id=f"task-{task.pk}",
                thread_key=f"tasks.task.{task.pk}",
                charged_to=people[n % len(people)],
                requested_by=people[n % len(people)],
                status=status,
                error_code="AGENT_TIMEOUT" if status == Status.FAILED else "",
                tokens_used=100 if status == Status.REPLIED else None,
                first_token_ms=rng.randint(100, 5000) if status == Status.REPLIED else None,
                queued_at=now - timedelta(minutes=rng.randint(0, days * 24 * 60 - 1)),
            )
        )
    return AgentRun.objects.bulk_create(runs, batch_size=2000)


@pytest.mark.django_db
def test_ten_thousand_runs_in_a_bounded_number_of_queries(
    task: Task, user: Any, django_assert_max_num_queries: Any
) -> None:
    people = [user] + [
        get_user_model().objects.create_user(f"person{n}", password="pw") for n in range(3)
    ]
    make_runs(task, people, 10_000)
    client = viewer()
    start = (timezone.localdate() - timedelta(days=14)).isoformat()
    end = timezone.localdate().isoformat()
    # The session, the user and their permissions; then the report's five queries.
    with django_assert_max_num_queries(9):
        response = client.get(URL, {"start": start, "end": end})
    assert response.status_code == 200
    page = response.content.decode()
    assert "<svg" in page and 'data-outcome="replied"' in page
    assert 'id="relaybridge-usage-agents"' in page and "athena" in page and "person2" in page
    assert "AGENT_TIMEOUT" in page
    with django_assert_max_num_queries(9):
        exported = client.get(URL, {"start": start, "end": end, "format": "csv"})
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    agents = {row[1]: row for row in rows if row[0] == "agent"}
    assert sum(int(row[2]) for row in agents.values()) == 10_000
    assert int(agents["athena"][2]) == 2000
    assert len([row for row in rows if row[0] == "day"]) == 15


@pytest.mark.django_db
def test_the_report_counts_outcomes_tokens_and_percentiles(task: Task, user: Any) -> None:
    make_runs(task, [user], 100, days=1)
    today = timezone.localdate()
    report = usage_report(today - timedelta(days=1), today)
    assert report.total.runs == 100
    athena = next(row for row in report.agents if row.key == "athena")
    assert athena.runs == 20
    assert athena.replied == 12 and athena.tokens == 1200
    rows = AgentRun.objects.filter(agent_id="athena", first_token_ms__isnull=False)
    times = sorted(ms for ms in rows.values_list("first_token_ms", flat=True) if ms is not None)
    assert (athena.p50_ms, athena.p95_ms) == (percentile(times, 0.5), percentile(times, 0.95))
    assert report.people[0].key == "alice" and report.people[0].runs == 100
    every = sorted(
        ms for ms in AgentRun.objects.values_list("first_token_ms", flat=True) if ms is not None
    )
    assert report.people[0].p95_ms == percentile(every, 0.95)
    assert sum(row.runs for row in report.days) == 100
    assert any(row.p50_ms is not None for row in report.days)
    # Outside the range: nothing.
    empty = usage_report(today - timedelta(days=30), today - timedelta(days=20))
    assert empty.agents == [] and empty.total.runs == 0 and len(empty.days) == 11


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7], 0.95) == 7
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.95)) == (50, 95)


def test_csv_cells_never_start_a_formula() -> None:
    for dangerous in ("=1+1", "+SUM(A1)", "-2", "@cmd", "\tx", "\rx"):
        assert csv_cell(dangerous) == "'" + dangerous
    assert csv_cell("athena") == "athena"
    assert csv_cell(12) == "12"
    assert csv_cell(None) == ""


@pytest.mark.django_db
def test_a_formula_in_a_name_is_exported_as_text(task: Task) -> None:
    mallory = get_user_model().objects.create_user("=HYPERLINK(1)", password="pw")
    make_runs(task, [mallory], 5, days=1)
    response = viewer().get(URL, {"format": "csv"})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    people = [row for row in rows if row[0] == "person"]
    assert people[0][1] == "'=HYPERLINK(1)"


def test_the_chart_is_plain_svg_with_escaped_text() -> None:
    from relaybridge.usage import Row

    days = [
        Row(key="2026-12-01", runs=4, replied=2, failed=1, refused=1),
        Row(key="<script>", runs=0),
    ]
    svg = chart_svg(days, title='Runs "per" day')
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count("<rect") == 3
    assert "<script" not in svg and "&lt;script&gt;" in svg
    assert "style=" not in svg
    assert "Runs &quot;per&quot; day" in svg


@pytest.mark.django_db
def test_the_page_needs_the_view_permission_and_is_linked_from_the_ledger(
    db: None, settings: Any
) -> None:
    staff = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client = Client()
    client.force_login(staff)
    assert client.get(URL).status_code == 403
    assert Client().get(URL).status_code == 302  # to the admin's login
    auditor = viewer()
    assert reverse("admin:relaybridge_usage") == URL
    ledger = auditor.get(reverse("admin:relaybridge_agentrun_changelist")).content.decode()
    assert f'href="{URL}"' in ledger


@pytest.mark.django_db
def test_a_bad_range_is_said_and_replaced(db: None) -> None:
    client = viewer()
    page = client.get(URL, {"start": "yesterday"}).content.decode()
    assert "Dates are written YYYY-MM-DD." in page
    page = client.get(URL, {"start": "2026-12-05", "end": "2026-12-01"}).content.decode()
    assert "The range starts after it ends" in page
    page = client.get(URL, {"start": "2020-01-01", "end": "2026-12-01"}).content.decode()
    assert "At most 366 days are shown." in page


@pytest.mark.django_db
def test_the_page_has_no_inline_script_or_style(db: None, task: Task, user: Any) -> None:
    make_runs(task, [user], 20, days=2)
    response = viewer().get(URL)
    page = response.content.decode()
    usage_part = page[page.index('id="content-main"') :]
    assert "<script" not in usage_part
    assert "style=" not in usage_part and "<style" not in usage_part
