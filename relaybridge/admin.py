"""The run ledger in the admin: every mention, its agent, status, thread and timings.

Read-only: runs change only through relaybridge's services, never by hand; who
stopped and who retried a run (and when) is shown with it. Beside
the ledger, an agents page shows the cached discovery (who can be mentioned, who
Relay refused), the relay worker's status and the way to Relay's dashboard, and a
usage page: runs, tokens and first-token times per agent, person and day, with a
chart and a CSV export (:mod:`relaybridge.usage`).
"""

from __future__ import annotations

import csv
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils import timezone
from django.utils.safestring import mark_safe

from . import usage
from .agents import get_directory
from .conf import relay_settings
from .models import ACTIVE_STATUSES, AgentRun, ReplyFeedback
from .worker.status import read_status

#: Where agents are registered and tokens rotated: relaybridge itself never does either.
RELAY_DASHBOARD_URL = "https://relay.ckgworks.com"

if TYPE_CHECKING:
    AgentRunAdminBase = admin.ModelAdmin[AgentRun]
else:
    AgentRunAdminBase = admin.ModelAdmin


def _worker_context() -> dict[str, Any]:
    status = read_status()
    return {
        "relay_worker": status.describe() if status is not None else None,
        "relay_dashboard_url": RELAY_DASHBOARD_URL,
    }


def _run_counts(agent_ids: list[str]) -> dict[str, dict[str, int]]:
    """Per agent: runs still going and runs that ended failed, in one query."""
    rows = (
        AgentRun.objects.filter(agent_id__in=agent_ids)
        .values("agent_id")
        .annotate(
            active=Count("id", filter=Q(status__in=ACTIVE_STATUSES)),
            failed=Count("id", filter=Q(status=AgentRun.Status.FAILED)),
        )
    )
    return {row["agent_id"]: {"active": row["active"], "failed": row["failed"]} for row in rows}


def usage_range(query: Any) -> tuple[date, date, str]:
    """The usage page's days from ``?start=&end=`` (ISO dates); the last 7 days by default.

    Returns the range and, when the query could not be used as it was, why.
    """
    today = timezone.localdate()
    end, start = today, today - timedelta(days=6)
    try:
        if query.get("end"):
            end = date.fromisoformat(str(query["end"]))
        start = (
            date.fromisoformat(str(query["start"]))
            if query.get("start")
            else end - timedelta(days=6)
        )
    except ValueError:
        return today - timedelta(days=6), today, "Dates are written YYYY-MM-DD."
    if start > end:
        return end, end, "The range starts after it ends: one day is shown."
    if (end - start).days >= usage.MAX_DAYS:
        start = end - timedelta(days=usage.MAX_DAYS - 1)
        return start, end, f"At most {usage.MAX_DAYS} days are shown."
    return start, end, ""


def _ms(value: int | None) -> str:
    return "—" if value is None else f"{value / 1000:.1f} s"


@admin.register(AgentRun)
class AgentRunAdmin(AgentRunAdminBase):
    # Above the ledger: what the relay worker reports (or that none is running).
    change_list_template = "admin/relaybridge/agentrun/change_list.html"
    list_display = (
        "agent_id",
        "status",
        "thread_id",
        "comment_id",
        "queued_at",
        "hop_depth",
        "attempts",
        "time_to_first_token",
        "duration",
        "error_code",
    )
    # "refused" among the statuses and the hop depth: where agents asking agents show.
    list_filter = ("status", "agent_id", "error_code", "hop_depth")
    search_fields = ("agent_id", "thread_id", "event_id", "error_code", "error_message")
    date_hierarchy = "queued_at"
    list_select_related = ("comment",)
    ordering = ("-queued_at", "-id")
    fieldsets = (
        (None, {"fields": ("run_id", "agent_id", "status", "thread_id", "thread_key")}),
        (
            "Request",
            {"fields": ("comment", "requested_by", "charged_to", "hop_depth", "payload")},
        ),
        (
            "Relay",
            {"fields": ("event_id", "attempts", "next_attempt_at", "error_code", "error_message")},
        ),
        (
            "Outcome",
            {
                "fields": (
                    "reply_comment",
                    "partial_text",
                    "tokens_used",
                    "model_name",
                    "relay_latency_ms",
                    "first_token_ms",
                )
            },
        ),
        (
            "Timeline",
            {
                "fields": (
                    "queued_at",
                    "sent_at",
                    "accepted_at",
                    "first_token_at",
                    "finished_at",
                    "updated_at",
                )
            },
        ),
        # Who pressed Stop and Retry last, and when (the views record it).
        ("Control", {"fields": ("stopped_by", "stopped_at", "retried_by", "retried_at")}),
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        # A reply's stored HTML can be large, and the admin never shows it.
        return super().get_queryset(request).defer("reply_html")

    @admin.display(description="first token")
    def time_to_first_token(self, run: AgentRun) -> str:
        return _ms(run.first_token_ms)

    @admin.display(description="duration")
    def duration(self, run: AgentRun) -> str:
        if run.finished_at is None:
            return "—"
        return f"{(run.finished_at - run.queued_at).total_seconds():.1f} s"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> Any:
        context = {**_worker_context(), **(extra_context or {})}
        return super().changelist_view(request, extra_context=context)

    def get_urls(self) -> list[URLPattern]:
        agents = path(
            "agents/",
            self.admin_site.admin_view(self.agents_view),
            name="relaybridge_agents",
        )
        usage = path(
            "usage/",
            self.admin_site.admin_view(self.usage_view),
            name="relaybridge_usage",
        )
        return [agents, usage, *super().get_urls()]

    def usage_view(self, request: HttpRequest) -> HttpResponse:
        """Runs, tokens and first-token times per agent, person and day; CSV with ?format=csv."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        start, end, problem = usage_range(request.GET)
        report = usage.usage_report(start, end)
        if request.GET.get("format") == "csv":
            response = HttpResponse(content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = (
                f'attachment; filename="relaybridge-usage-{start}-{end}.csv"'
            )
            csv.writer(response).writerows(usage.csv_rows(report))
            return response
        context = {
            **self.admin_site.each_context(request),
            "title": "Agent usage",
            "opts": self.model._meta,
            "report": report,
            "total": report.total,
            "chart": mark_safe(usage.chart_svg(report.days)),  # every text in it escaped
            "start": start,
            "end": end,
            "problem": problem,
            "csv_query": urlencode({"start": start, "end": end, "format": "csv"}),
        }
        return TemplateResponse(request, "admin/relaybridge/usage.html", context)

    def agents_view(self, request: HttpRequest) -> HttpResponse:
        """The agents one can mention, from the relay worker's last discovery."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        directory = get_directory()
        if directory is not None:
            agents = [dict(info) for info in directory["agents"]]
        else:
            # Before the first discovery, mentions are checked against the allow-list.
            agents = [
                {"agent_id": agent_id, "name": agent_id, "description": "", "unavailable": False}
                for agent_id in relay_settings.AGENTS
            ]
        counts = _run_counts([str(agent["agent_id"]) for agent in agents])
        for agent in agents:
            agent.update(counts.get(str(agent["agent_id"]), {"active": 0, "failed": 0}))
        context = {
            **self.admin_site.each_context(request),
            **_worker_context(),
            "title": "Relay agents",
            "opts": self.model._meta,
            "agents": agents,
            "discovered_at": (
                datetime.fromtimestamp(directory["fetched_at"], tz=UTC) if directory else None
            ),
        }
        return TemplateResponse(request, "admin/relaybridge/agents.html", context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ReplyFeedback)
class ReplyFeedbackAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """People's votes on agents' replies: filter by vote, agent and date."""

    list_display = ("run", "agent", "vote", "user", "note", "updated_at")
    list_filter = ("vote", "run__agent_id", "updated_at")
    search_fields = ("note", "run__thread_id", "run__agent_id")
    list_select_related = ("run", "user")
    readonly_fields = ("run", "user", "vote", "note", "created_at", "updated_at")
    date_hierarchy = "updated_at"

    @admin.display(description="agent", ordering="run__agent_id")
    def agent(self, feedback: ReplyFeedback) -> str:
        return feedback.run.agent_id

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # votes come from the people who read the replies
